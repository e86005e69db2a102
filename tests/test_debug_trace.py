"""Instruction tracing (vmm/debug/trace.py): KVM single-steps, unicorn calls a code hook, and
both write the same lines for the same guest."""
import io
import subprocess
import sys

import pytest

from vmm import paths
from vmm.config import MachineConfig
from vmm.debug.trace import InstructionTracer, attach_tracer
from vmm.engines import kvm_features
from vmm.machine import Machine
from vmm.outcome import DEBUG_EXIT

from conftest import _probe, engine_params
from test_debug_support import COUNT_LOOP, ENTRY, exit_with, synthetic_vm

KERNEL_PREFIX = 3000        # boot instructions traced on each engine (all ring 0, before user mode)
MIN_COMMON = 500            # the traces must agree at least this far
ENVIRONMENT = {"cpuid", "rdtsc", "rdtscp"}


class Capture(io.StringIO):
    def close(self):
        self.closed_text = self.getvalue()


def trace_synthetic(engine_name, code, limit=1000):
    out = Capture()
    tracer = InstructionTracer(out, limit)
    with synthetic_vm(engine_name, code) as g:
        feed = attach_tracer(g.engine, tracer)
        outcome = g.engine.run(10)
        feed.detach()
    tracer.close(outcome)
    return outcome, out.closed_text.splitlines()


EXPECTED_LOOP = (["# 64-bit code",
                  "0x0000000000100000: b9 05 00 00 00                     mov ecx, 5"]
                 + ["0x0000000000100005: 48 ff c3                           inc rbx",
                    "0x0000000000100008: ff c9                              dec ecx",
                    "0x000000000010000a: 75 f9                              jne 0x100005"] * 5
                 + ["0x000000000010000c: b8 07 00 00 00                     mov eax, 7",
                    "0x0000000000100011: e7 f4                              out 0xf4, eax",
                    "# end: debug-exit: guest wrote 0x7 to the debug-exit port"])


@pytest.mark.parametrize("engine_name", engine_params())
def test_trace_of_a_loop(engine_name):
    outcome, lines = trace_synthetic(engine_name, COUNT_LOOP)
    assert outcome.reason == DEBUG_EXIT and outcome.status == 7
    assert lines == EXPECTED_LOOP


@pytest.mark.parametrize("engine_name", engine_params())
def test_rep_instructions_are_one_line(engine_name):
    code = (b"\xb9\x04\x00\x00\x00"          # mov ecx, 4
            + b"\xbf\x00\x40\x00\x00"        # mov edi, 0x4000
            + b"\xf3\xaa"                    # rep stosb
            + exit_with(0))
    outcome, lines = trace_synthetic(engine_name, code)
    assert outcome.status == 0
    assert [line[55:] for line in lines[1:6]] == ["mov ecx, 4", "mov edi, 0x4000",
                                                  "rep stosb byte ptr [rdi], al", "mov eax, 0", "out 0xf4, eax"]


@pytest.mark.parametrize("engine_name", engine_params())
def test_limit_stops_tracing_not_the_guest(engine_name):
    outcome, lines = trace_synthetic(engine_name, COUNT_LOOP, limit=4)
    assert outcome.reason == DEBUG_EXIT and outcome.status == 7          # the guest went on
    assert len([line for line in lines if line.startswith("0x")]) == 4
    assert lines[-2] == "# trace limit of 4 instructions reached: tracing stopped, the guest went on"


@pytest.mark.kvm_feature(kvm_features.STEP_MODE_SWITCH)
def test_both_engines_trace_the_same_kernel_boot(kernel_path, tmp_path):
    """The real kernel's boot (32-bit entry, the switch to long mode, kmain's set-up, all in
    ring 0) is traced the same on both engines, instruction for instruction, up to the first
    instruction that reads the host environment (cpuid, rdtsc): the engines' CPUID tables and
    clocks differ by design, and the guest may branch on them after that."""
    for name in ("kvm", "unicorn"):
        reason = _probe(name)
        if reason is not None:
            pytest.skip(f"{name} unavailable: {reason}")
    traces = {}
    for name in ("kvm", "unicorn"):
        path = tmp_path / f"{name}.trace"
        config = MachineConfig(kernel=kernel_path, initrd="guest/build/programs/hello", accel=name, serial="none")
        with Machine(config) as vm:
            tracer = InstructionTracer.open(str(path), KERNEL_PREFIX)
            feed = attach_tracer(vm.engine, tracer)
            result = vm.run()
            feed.detach()
            tracer.close()
        assert result.reason == DEBUG_EXIT and result.status == 0
        assert b"hello" in result.serial
        traces[name] = [line for line in path.read_text().splitlines() if line.startswith("0x")]
    assert len(traces["kvm"]) == KERNEL_PREFIX
    first_read = next(i for i, line in enumerate(traces["kvm"]) if line[55:].split(" ")[0] in ENVIRONMENT)
    assert first_read >= MIN_COMMON, "the boot reads CPUID too early for this test to mean much"
    assert traces["kvm"][:first_read + 1] == traces["unicorn"][:first_read + 1]
    assert traces["kvm"][0].startswith(f"{ENTRY:#018x}: fa") and traces["kvm"][0].endswith("cli")


# call f ; nop ; mov eax, 7 ; out 0xf4, eax ; (padding) ; f: out 0x80, al ; mov al, 1 ; out 0x80, al ; ret
WRITES_THEN_RET = (bytes.fromhex("e80b000000" "90" "b807000000" "e7f4") + b"\x90" * 3
                   + bytes.fromhex("e680" "b001" "e680" "c3"))


@pytest.mark.parametrize("engine_name", engine_params())
def test_instructions_after_exiting_writes_are_traced(engine_name):
    """kvm_pvm gives no step exit after an OUT: the tracer recovers the instruction that
    ran unseen (here a mov and a ret), so both engines write the same trace, without gaps."""
    outcome, lines = trace_synthetic(engine_name, WRITES_THEN_RET)
    assert outcome.status == 7
    assert [line[55:] for line in lines if line.startswith("0x")] == [
        "call 0x100010", "out 0x80, al", "mov al, 1", "out 0x80, al", "ret", "nop", "mov eax, 7", "out 0xf4, eax"]
    assert not any(line.startswith("# gap") for line in lines)


GC_BEFORE_RUN = """
import gc, sys
from vmm import Machine, MachineConfig
from vmm.debug.session import DebugOptions
config = MachineConfig(kernel=sys.argv[1], initrd="guest/build/programs/hello", accel=sys.argv[2], serial="none")
with Machine(config, debug=DebugOptions(trace=sys.argv[3], trace_limit=2000)) as vm:
    for _ in range(3):
        gc.collect()
    result = vm.run()
print(result.reason, result.status)
"""


@pytest.mark.parametrize("engine_name", engine_params(kvm_features=(kvm_features.STEP_MODE_SWITCH,)))
def test_trace_survives_garbage_collection_between_set_up_and_run(engine_name, kernel_path, tmp_path):
    """The engine's trace callback is owned for as long as the engine can call it: `--trace`
    set up, a full garbage collection, then the run (on unicorn a dropped ctypes callback
    once made this a SIGSEGV). In a child process, so that a crash fails this test alone."""
    trace = tmp_path / "trace.txt"
    proc = subprocess.run([sys.executable, "-c", GC_BEFORE_RUN, kernel_path, engine_name, str(trace)],
                          capture_output=True, cwd=str(paths.REPO_ROOT), timeout=120)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]
    assert proc.stdout == b"debug-exit 0\n"
    lines = [line for line in trace.read_text().splitlines() if line.startswith("0x")]
    assert len(lines) == 2000 and lines[0].startswith(f"{ENTRY:#018x}: fa")
