"""Which of the guest kernel's two system-call paths runs on this KVM (guest/kernel/traps.S).

On a KVM with hardware semantics (`make test-nested`, or any VT-x/AMD-V host) `syscall`
enters ring 0 at LSTAR and the normal `swapgs` entry runs: it saves the user's RSP in the
kernel's `percpu.user_rsp` (guest/kernel/cpu.c). On kvm_pvm it reaches LSTAR still at CPL 3,
the `swapgs` there faults, and the #GP/#PF handler completes the call: that slot is never
written. The `hello` program runs to its end either way; the PVM test also stops its first
system call in the fault handler with a breakpoint of the debugger (vmm/debug/target.py).
"""
import re
import shutil
import subprocess

import pytest

from vmm import paths
from vmm.config import MachineConfig
from vmm.debug.target import SIGTRAP, DebugTarget
from vmm.engines import kvm_features
from vmm.machine import Machine
from vmm.outcome import DEBUG_EXIT

RPL_MASK = 3
PERCPU_USER_RSP = 8                             # guest/kernel/cpu.c struct percpu


def _kernel_layout(name: str) -> int:
    """A plain hex constant of guest/kernel/layout.h (read there, so that this test follows it)."""
    text = (paths.REPO_ROOT / "guest" / "kernel" / "layout.h").read_text()
    return int(re.search(rf"#define\s+{name}\s+(0x[0-9a-fA-F]+)", text).group(1), 16)


USER_STACK_TOP = _kernel_layout("USER_END") - 2 * 0x1000       # layout.h: USER_STACK_TOP
USER_STACK_BOTTOM = USER_STACK_TOP - _kernel_layout("USER_STACK_MAX")


def kernel_symbols(kernel_path, *names) -> dict:
    """{name: address} from the kernel's symbol table (local symbols included)."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("nm (binutils) not installed")
    table = {}
    for line in subprocess.run([nm, kernel_path], capture_output=True, text=True, check=True).stdout.splitlines():
        address, _, name = line.split(" ", 2)
        table[name] = int(address, 16)
    return {name: table[name] for name in names}


def run_to_first_stop(kernel_path, addresses):
    """Boot `hello` under the debug target with breakpoints at `addresses`; return the
    state and the first 3 stack quadwords at the first stop, then the run's outcome."""
    config = MachineConfig(kernel=kernel_path, initrd="guest/build/programs/hello", accel="kvm", serial="none",
                           timeout=60)
    with Machine(config) as vm:
        target = DebugTarget(vm.engine.debug())
        for address in addresses:
            target.add_breakpoint(address)
        stop = target.resume()
        assert stop.signal == SIGTRAP, stop.outcome
        state = target.read_state()
        frame = target.read_memory(state.regs["rsp"], 24)
        target.clear_breakpoints()
        end = target.resume()
        target.close()
    stack = [int.from_bytes(frame[i:i + 8], "little") for i in range(0, 24, 8)]
    return state, stack, end


def user_rsp_saved_by_the_swapgs_path(kernel_path) -> int:
    """Run `hello` to its end; the kernel's percpu.user_rsp slot afterwards (0: never written)."""
    percpu = kernel_symbols(kernel_path, "percpu")["percpu"]       # identity-mapped kernel data
    config = MachineConfig(kernel=kernel_path, initrd="guest/build/programs/hello", accel="kvm", timeout=60)
    with Machine(config) as vm:
        result = vm.run()
        slot = vm.memory.read_u64(percpu + PERCPU_USER_RSP)
    assert result.reason == DEBUG_EXIT and result.status == 0 and result.serial == b"hello from ring 3\n"
    return slot


@pytest.mark.kvm_feature(kvm_features.SYSCALL_RING0)
def test_syscall_enters_ring0_and_runs_the_swapgs_path(kernel_path):
    assert USER_STACK_BOTTOM < user_rsp_saved_by_the_swapgs_path(kernel_path) <= USER_STACK_TOP


@pytest.mark.kvm_lacks(kvm_features.SYSCALL_RING0)
def test_syscall_at_cpl3_faults_and_the_handler_completes_it(kernel_path):
    """kvm_pvm: the first system call arrives as #GP or #PF whose saved RIP is syscall_entry
    and whose saved CS is the user's."""
    symbols = kernel_symbols(kernel_path, "syscall_entry", "gp_entry", "pf_entry")
    state, (error_code, saved_rip, saved_cs), end = run_to_first_stop(
        kernel_path, [symbols["gp_entry"], symbols["pf_entry"]])
    assert state.rip in (symbols["gp_entry"], symbols["pf_entry"])
    assert saved_rip == symbols["syscall_entry"] and saved_cs & RPL_MASK == 3
    assert end.outcome.reason == DEBUG_EXIT and end.outcome.status == 0
    assert user_rsp_saved_by_the_swapgs_path(kernel_path) == 0            # every call took the fault path
