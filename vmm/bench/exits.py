"""The exits benchmark: port-I/O exits per second, bare ctypes loop vs. the VMM's path.

Both sides run the same real-mode guest, `n_exits` times `out %al,%dx` in a loop, then
`hlt`:
- bare_kvm_loop: the least a Python VMM can do, KVM_RUN and an exit-reason check;
- vmm_loop: KvmEngine.run() with the PortBus and a device at the UART's scratch register
  (COM1 + 7), the path every real port write takes.
The ratio of their medians is the cost of the VMM's exit handling. Runs are interleaved
(bare, vmm, bare, vmm...) so that drifts in the host's speed hit both sides alike.

    python -m vmm.bench.exits [--runs 5] [--exits 20000]
"""
import argparse
import time

from .. import layout
from ..arch.x86.cpu_state import CpuState, Segment, TYPE_CODE_XR_ACCESSED
from ..arch.x86.cpuid import build_table
from ..devices.bus import MmioBus, PortBus
from ..engines.base import HALT, RunControl
from ..engines.kvm import KvmEngine
from ..kvm import Kvm, constants as kc
from ..kvm.ioctl import raw_ioctl
from ..kvm.ioctl_numbers import KVM_RUN
from ..kvm.vcpu import EXIT_REASON_U32
from ..kvm.vm import bare_real_mode_vcpu
from ..memory import GuestMemory
from .harness import FAILED, OK, Row, RunFailed, interleave, status_text, summary

MEM_SIZE = 64 * layout.KiB
CODE_ADDR = 0x1000
SCRATCH_PORT = layout.COM1_PORT + 7       # the 16550's scratch register
# Real mode, at CODE_ADDR; DX = port, AL = value, ECX = iterations:
#   1: out %al,%dx ; dec %ecx ; jnz 1b ; hlt
GUEST_CODE = bytes([0xEE, 0x66, 0x49, 0x75, 0xFB, 0xF4])


def _guest_state(n_exits: int) -> CpuState:
    state = CpuState(rip=CODE_ADDR, cs=Segment(type=TYPE_CODE_XR_ACCESSED))
    state.regs.update(rcx=n_exits, rdx=SCRATCH_PORT, rax=0x55)
    return state


class ScratchStub:
    """Stands in for the 16550's scratch register: stores a byte, reads it back."""

    def __init__(self):
        self.scratch = 0

    def read(self, offset: int, size: int) -> int:
        return self.scratch

    def write(self, offset: int, size: int, value: int) -> None:
        self.scratch = value


def bare_kvm_loop(n_exits: int) -> float:
    """Exits per second of a minimal KVM_RUN loop (own VM, registers set by hand)."""
    with GuestMemory(MEM_SIZE) as memory, Kvm() as kvm, kvm.create_vm() as vm:
        memory.write(CODE_ADDR, GUEST_CODE)
        vcpu = bare_real_mode_vcpu(vm, memory, layout.KVM_TSS_ADDR)
        regs = vcpu.get_regs()
        state = _guest_state(n_exits)
        regs.rip, regs.rflags = state.rip, state.rflags
        regs.rcx, regs.rdx, regs.rax = n_exits, SCRATCH_PORT, 0x55
        vcpu.set_regs(regs)

        fd, u32, ioctl, io = vcpu.fd, vcpu.u32, raw_ioctl, kc.KVM_EXIT_IO
        exits = 0
        start = time.perf_counter()
        while True:
            ioctl(fd, KVM_RUN, 0)
            if u32[EXIT_REASON_U32] != io:
                break
            exits += 1
        elapsed = time.perf_counter() - start
        if exits != n_exits or u32[EXIT_REASON_U32] != kc.KVM_EXIT_HLT:
            raise RunFailed(f"bare loop: {exits} port exits, then exit {u32[EXIT_REASON_U32]}")
        return n_exits / elapsed


def vmm_loop(n_exits: int, device=None) -> float:
    """Exits per second of the same guest through KvmEngine, the PortBus and a device."""
    ports = PortBus()
    device = device if device is not None else ScratchStub()
    ports.register(layout.COM1_PORT, layout.COM1_PORT_COUNT, device)
    with GuestMemory(MEM_SIZE) as memory:
        memory.write(CODE_ADDR, GUEST_CODE)
        # No in-kernel irqchip, as in the bare loop: the closing HLT then exits at once, instead
        # of being found by the watchdog up to 200 ms later, inside the timed window.
        with KvmEngine(memory, ports, MmioBus(), RunControl(), build_table(KvmEngine.tsc_khz()),
                       irqchip=False) as engine:
            engine.set_state(_guest_state(n_exits))
            start = time.perf_counter()
            outcome = engine.run()
            elapsed = time.perf_counter() - start
            exits = engine.exit_counts().get("io", 0)
        if outcome.reason != HALT or exits != n_exits:
            raise RunFailed(f"VMM loop: {exits} port exits, then {outcome}")
        return n_exits / elapsed


class LoopRow(Row):
    """One of the two loops, measured in exits per second."""

    def __init__(self, name, label, loop):
        self.name, self.label, self.loop = name, label, loop

    def measure(self, context):
        return self.loop(context["n_exits"])


def run(runs: int = 5, n_exits: int = 20000) -> dict:
    """Interleaved runs of both loops (bare, vmm, bare, vmm...): {"bare": {min, median, max},
    "vmm": {...}, "ratio": vmm median / bare median, "runs", "n_exits", "rows"}."""
    rows = [LoopRow("bare", "bare KVM", bare_kvm_loop), LoopRow("vmm", "VMM", vmm_loop)]
    state = interleave(rows, runs, warmup=0, context={"n_exits": n_exits})
    result = {"runs": runs, "n_exits": n_exits, "rows": []}
    for row in rows:
        entry = state[row.name]
        ok = entry["status"] == OK
        result[row.name] = summary(entry["samples"]) if ok else None
        result["rows"].append({"name": row.name, "label": row.label, "status": entry["status"],
                               "reason": entry["reason"]})
    result["ratio"] = result["vmm"]["median"] / result["bare"]["median"] if result["vmm"] and result["bare"] else None
    return result


def format_table(result: dict) -> str:
    lines = [f"port-I/O exits per second ({result['runs']} runs of {result['n_exits']} exits, interleaved)",
             f"{'path':<10}{'min':>12}{'median':>12}{'max':>12}"]
    notes = []
    for row in result["rows"]:
        numbers = result[row["name"]]
        if numbers is None:
            lines.append(f"{row['label']:<10}{status_text(row, notes):>36}")
            continue
        lines.append(f"{row['label']:<10}{numbers['min']:>12,.0f}{numbers['median']:>12,.0f}{numbers['max']:>12,.0f}")
    if result["ratio"] is not None:
        lines.append(f"VMM / bare (medians): {result['ratio']:.1%}")
    return "\n".join(lines + notes)


def main(runs: int = 5, count: int = 20000) -> int:
    """Print the table (what `vmm bench exits` runs); 69 if KVM cannot run here."""
    reason = KvmEngine.probe()
    if reason is not None:
        print(f"KVM unavailable: {reason}")
        return 69
    result = run(runs, count)
    print(format_table(result))
    return 1 if any(row["status"] == FAILED for row in result["rows"]) else 0


def _cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exits", type=int, default=20000)
    args = parser.parse_args(argv)
    return main(args.runs, args.exits)


if __name__ == "__main__":
    raise SystemExit(_cli())
