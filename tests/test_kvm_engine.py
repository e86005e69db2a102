"""What only KvmEngine does, on tiny hand-assembled guests: KVM's own exit names, one 8-byte
MMIO exit, the exact stop after an exiting write, SIGINT, the kick signal's handler, KVM's
CPUID overrides and the rare exits decoded from kvm_run. The engine contract both engines
keep is tests/test_engine_contract.py, whose guests these reuse.

The machine code is written out as bytes with its assembly (GNU as, AT&T) beside it.
"""
import os
import signal
import threading
from functools import partial

import pytest

from vmm import layout
from vmm.arch.x86.cpuid import build_table
from vmm.devices.bus import MmioBus, PortBus
from vmm.engines import base
from vmm.engines.base import RunControl
from vmm.kvm import constants as kc
from vmm.kvm.structs import KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KvmRun
from vmm.memory import GuestMemory

import test_engine_contract as contract
from test_engine_contract import ENTRY, HLT, MMIO_BASE, MOV_DX_SCRATCH, RAM_SIZE, SPIN, long_mode_state

pytestmark = pytest.mark.usefixtures("requires_kvm")
guest = partial(contract.guest, "kvm")


def u64(value):
    return value.to_bytes(8, "little")


def test_exits_are_counted_by_kvm_exit_reason():
    code = (MOV_DX_SCRATCH
            + b"\xee"                           # out %al, (%dx)
            + b"\xec"                           # in (%dx), %al
            + HLT)
    with guest(code) as g:
        assert g.engine.run(5).reason == base.HALT
        counts = g.engine.exit_counts()
        assert (counts["io"], counts["hlt"]) == (2, 1)
        assert set(counts) <= {"io", "hlt", "intr"}     # the HLT stays in KVM; a kick (intr) finds it


def test_eight_byte_mmio_in_long_mode_is_one_exit():
    code = (b"\x48\xb8" + u64(0x0102_0304_0506_0708)   # movabs $0x0102030405060708, %rax
            + b"\x48\xa3" + u64(MMIO_BASE + 0x20)      # movabs %rax, MMIO_BASE+0x20
            + b"\x48\xa1" + u64(MMIO_BASE + 0x28)      # movabs MMIO_BASE+0x28, %rax
            + HLT)
    with guest(code, long_mode_state()) as g:
        assert g.engine.run(5).reason == base.HALT
        assert g.mmio_device.log == [("w", 0x20, 8, 0x0102_0304_0506_0708), ("r", 0x28, 8)]
        assert g.engine.get_state().regs["rax"] == 0x1122_3344_5566_7788


def test_a_stop_after_an_out_completes_it_and_runs_nothing_more():
    code = (b"\xb0\x2a"                                  # mov $42, %al
            + b"\xe6" + bytes([layout.DEBUG_EXIT_PORT])  # out %al, $DEBUG_EXIT_PORT
            + MOV_DX_SCRATCH
            + b"\xee"                                    # out %al, (%dx): must not happen
            + HLT)
    with guest(code) as g:
        outcome = g.engine.run(5)
        assert (outcome.reason, outcome.status) == (base.DEBUG_EXIT, 42)
        assert outcome.rip == ENTRY + 4                  # just after the OUT, which completed
        assert g.engine.get_state().rip == ENTRY + 4


def test_sigint_interrupts_the_run():
    with guest(SPIN) as g:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        outcome = g.engine.run(10)
        timer.join()
        assert outcome.reason == base.INTERRUPTED       # SIGINT ended it, not the timeout


def test_kick_handler_is_restored_when_the_last_engine_closes():
    from vmm.kvm import kick
    if kick._pinned or kick._users:
        pytest.skip("the kick handler is pinned or in use elsewhere in this process")
    before = signal.getsignal(kick.KICK_SIGNAL)
    with guest(HLT), guest(HLT):
        assert signal.getsignal(kick.KICK_SIGNAL) is kick._on_kick
    assert signal.getsignal(kick.KICK_SIGNAL) is before


def test_engine_created_in_another_thread_needs_the_handler(monkeypatch):
    from vmm.engines.kvm import KvmEngine
    from vmm.errors import VmmError
    from vmm.kvm import kick
    if kick.kick_handler_installed():
        pytest.skip("a kick handler is already installed in this process")
    errors = []

    def create():
        with GuestMemory(RAM_SIZE) as memory:
            try:
                KvmEngine(memory, PortBus(), MmioBus(), RunControl(), build_table(1000)).close()
            except VmmError as error:
                errors.append(str(error))
    worker = threading.Thread(target=create)
    worker.start()
    worker.join(10)
    assert len(errors) == 1 and "install_kick_handler() from the main thread" in errors[0]


# --- CPUID --------------------------------------------------------------------------------------------

def test_identity_leaves_are_never_overridden():
    with guest(HLT) as g:
        overridden = {function for function, *_ in g.engine.cpuid_overrides}
        assert not overridden & {0, 0x4000_0000, 0x4000_0010, 0x8000_0000, 0x8000_0002}
        for name in g.engine.dropped_features:
            assert isinstance(name, str)
        assert g.engine.cpuid.lookup(1)[2] >> 31 & 1    # the hypervisor bit stays


# --- exits decoded from kvm_run (KVM cannot be made to produce these on purpose) -------------------

def _decode(g, reason, fill):
    run = KvmRun()
    fill(run)
    g.engine._vcpu.snapshot = lambda: run
    return g.engine._other_exit(reason, None)


def test_rare_exits_are_described():
    with guest(HLT) as g:
        def emulation(run):
            run.emulation_failure.suberror = kc.KVM_INTERNAL_ERROR_EMULATION
            run.emulation_failure.ndata = 3
            run.emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
            run.emulation_failure.insn_size = 4
            run.emulation_failure.insn_bytes[:4] = [0xF0, 0x48, 0x0F, 0xC7]
        outcome = _decode(g, kc.KVM_EXIT_INTERNAL_ERROR, emulation)
        assert outcome.reason == base.EMULATION_FAILURE
        assert "f0 48 0f c7" in outcome.detail and f"rip={ENTRY:#x}" in outcome.detail

        def delivery(run):
            run.internal.suberror = kc.KVM_INTERNAL_ERROR_DELIVERY_EV
            run.internal.ndata = 1
            run.internal.data[0] = 0x80000b0e
        outcome = _decode(g, kc.KVM_EXIT_INTERNAL_ERROR, delivery)
        assert outcome.reason == base.INTERNAL_ERROR and "0x80000b0e" in outcome.detail

        def entry(run):
            run.fail_entry.hardware_entry_failure_reason = 0x21
        outcome = _decode(g, kc.KVM_EXIT_FAIL_ENTRY, entry)
        assert outcome.reason == base.ENTRY_FAILURE and "0x21" in outcome.detail

        def reset(run):
            run.system_event.type = kc.KVM_SYSTEM_EVENT_RESET
        outcome = _decode(g, kc.KVM_EXIT_SYSTEM_EVENT, reset)
        assert outcome.reason == base.SYSTEM_EVENT and "reset" in outcome.detail

        outcome = _decode(g, kc.KVM_EXIT_IRQ_WINDOW_OPEN, lambda run: None)
        assert outcome.reason == base.INTERNAL_ERROR and "7 (irq-window-open)" in outcome.detail
        assert g.engine.exit_counts()["irq-window-open"] == 1


def fresh_probe_vm(monkeypatch):
    """(pid, Kvm, Vm): the VM a fresh KvmEngine.probe() keeps for the next engine."""
    from vmm.engines import kvm_setup
    from vmm.engines.kvm import KvmEngine
    monkeypatch.setattr(kvm_setup, "_probe_vm", None)
    monkeypatch.setattr(KvmEngine, "_probe_result", ...)
    assert KvmEngine.probe() is None
    if kvm_setup._probe_vm is None:
        pytest.skip("this kernel answers KVM_GET_TSC_KHZ only on a vCPU (Linux before 6.0): no VM is kept")
    return kvm_setup._probe_vm


def test_a_forked_child_makes_its_own_vm_instead_of_the_parents_probe_vm(monkeypatch):
    """`vmm test -j 2` forks workers after the parent probed KVM: a VM answers only the process
    that made it (EIO elsewhere), so the child must not take the inherited probe VM."""
    import os
    from vmm import layout
    from vmm.engines import kvm_setup
    spare = fresh_probe_vm(monkeypatch)
    child = os.fork()
    if child == 0:
        status = 1
        try:
            kvm, vm = kvm_setup.open_vm()
            vm.set_tss_addr(layout.KVM_TSS_ADDR)          # EIO on the parent's VM
            status = 0 if vm is not spare[2] else 2
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    assert kvm_setup._probe_vm is spare                 # the parent's probe VM is still there
    kvm, vm = kvm_setup.open_vm()
    try:
        vm.set_tss_addr(layout.KVM_TSS_ADDR)             # and still works in the parent
    finally:
        vm.close()
        kvm.close()


def test_the_probes_vm_becomes_the_next_engines(monkeypatch):
    """KvmEngine.probe() proves KVM works with a VM of its own; the next engine takes that VM
    instead of making (and the probe destroying) a second one."""
    from vmm.engines import kvm_setup
    from vmm.engines.kvm import KvmEngine
    spare = fresh_probe_vm(monkeypatch)
    with GuestMemory(RAM_SIZE) as memory:
        engine = KvmEngine(memory, PortBus(), MmioBus(), RunControl(), build_table(KvmEngine.tsc_khz()))
        try:
            assert (engine._kvm, engine._vm) == spare[1:] and kvm_setup._probe_vm is None
        finally:
            engine.close()
    with GuestMemory(RAM_SIZE) as memory, \
            KvmEngine(memory, PortBus(), MmioBus(), RunControl(), build_table(KvmEngine.tsc_khz())) as engine:
        assert engine._vm is not spare[2]               # the next one makes its own
