"""KVM's in-kernel interrupt controllers and PIT: interrupt lines raised from other threads
(KVM_IRQ_LINE), the PIT's IRQ 0, HLT with interrupts on (the vCPU sleeps in KVM) and off
(the run ends with HALT), and what a sleeping guest costs the host.

The guest is vmm/bench/interrupts.py's IrqGuest: long mode, both PICs initialized, one IRQ
unmasked, `sti; hlt` in a loop; its handler counts, reports the count on a port, and EOIs.
"""
import threading
import time

import pytest

from vmm import layout
from vmm.bench import interrupts as bench
from vmm.bench.interrupts import IrqGuest, booted
from vmm.devices.bus import PortBus
from vmm.engines import base
from vmm.errors import VmmError
from vmm.kvm import constants as kc

pytestmark = pytest.mark.usefixtures("requires_kvm")

REPORT_PORT = 0x3FF             # COM1's scratch register, free in these machines


class Reports:
    """The port the guest's handler writes its count to: (count, seconds since start)."""

    def __init__(self):
        self.values = []
        self.start = time.monotonic()

    def read(self, offset, size):
        return 0xFF

    def write(self, offset, size, value):
        self.values.append((value, time.monotonic() - self.start))

    def counts(self):
        return [value for value, _ in self.values]


def reporting(guest: IrqGuest):
    ports, reports = PortBus(), Reports()
    ports.register(REPORT_PORT, 1, reports)
    return booted("kvm", guest, ports), reports


def later(delay: float, *actions):
    """Run `actions` (callables) one after another on a thread, `delay` seconds apart."""
    def body():
        for action in actions:
            time.sleep(delay)
            action()
    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread


# --- interrupt lines --------------------------------------------------------------------------------

def test_irq_line_from_another_thread_wakes_the_halted_guest():
    context, reports = reporting(IrqGuest(irq=layout.COM1_IRQ, report_port=REPORT_PORT, stop_after=1))
    with context as (vm, memory, control):
        line = vm.irq_line(layout.COM1_IRQ)
        thread = later(0.3, line.pulse)
        started = time.monotonic()
        outcome = vm.run(10)
        elapsed = time.monotonic() - started
        thread.join()
        assert (outcome.reason, outcome.status) == (base.DEBUG_EXIT, 0), outcome.detail
        assert reports.counts() == [1]
        assert elapsed >= 0.25                        # slept in HLT until the line rose
        assert vm.exit_counts().get("intr", 0) <= 1   # a HLT with IF=1 is looked at once at most


def test_a_raised_edge_line_must_fall_before_it_interrupts_again():
    """The PIC's inputs are edge-triggered: raise, raise again (nothing), lower, raise."""
    context, reports = reporting(IrqGuest(irq=layout.COM1_IRQ, report_port=REPORT_PORT))
    with context as (vm, memory, control):
        line = vm.irq_line(layout.COM1_IRQ)
        thread = later(0.1, lambda: line(True), lambda: line(True), lambda: line(False), lambda: line(True))
        outcome = vm.run(0.8)
        thread.join()
        assert outcome.reason == base.TIMEOUT
        assert outcome.detail.startswith("timed out in hlt (interrupts enabled)")
        assert reports.counts() == [1, 2]
        assert reports.values[1][1] >= 0.35           # the second came from the last raise


def test_slave_pic_irq_arrives_through_the_cascade():
    context, reports = reporting(IrqGuest(irq=11, report_port=REPORT_PORT, stop_after=1))
    with context as (vm, memory, control):
        thread = later(0.1, vm.irq_line(11).pulse)
        outcome = vm.run(10)
        thread.join()
        assert outcome.reason == base.DEBUG_EXIT and reports.counts() == [1]
        slave = vm.pic_state(kc.KVM_IRQCHIP_PIC_SLAVE)
        # In service: the handler stopped the VM before its EOI.
        assert (slave.irq_base, slave.imr, slave.isr) == (0x28, 0xFF & ~(1 << 3), 1 << 3)


def test_a_masked_line_is_not_delivered():
    context, reports = reporting(IrqGuest(irq=layout.COM1_IRQ, report_port=REPORT_PORT))
    with context as (vm, memory, control):
        thread = later(0.1, vm.irq_line(3).pulse, vm.irq_line(9).pulse)
        assert vm.run(0.4).reason == base.TIMEOUT
        thread.join()
        assert reports.counts() == []
        assert vm.pic_state().irr & (1 << 3)          # latched in IRR, held back by IMR


def test_irq_line_checks_its_gsi():
    with booted("kvm", IrqGuest()) as (vm, memory, control):
        assert vm.irq_line(23).gsi == 23
        with pytest.raises(VmmError, match="GSI 24"):
            vm.irq_line(24)


def test_irq_line_after_close_does_nothing(monkeypatch):
    """A device thread that raises its line after the VM closed (a late completion) must not
    issue KVM_IRQ_LINE on the closed descriptor, whose number another file may have taken."""
    import vmm.kvm.vm as kvm_vm
    calls = []
    real_ioctl = kvm_vm.raw_ioctl
    monkeypatch.setattr(kvm_vm, "raw_ioctl", lambda *args: calls.append(args) or real_ioctl(*args))
    with booted("kvm", IrqGuest()) as (vm, memory, control):
        line = vm.irq_line(4)
        line(False)                     # while open: one real ioctl, seen by the spy
        assert len(calls) == 1
    line(True)
    line.pulse()
    assert len(calls) == 1


# --- the in-kernel PIT ------------------------------------------------------------------------------

def test_pit_ticks_reach_the_guest_as_irq0():
    guest = IrqGuest(pit_hz=1000, stop_after=50)
    with booted("kvm", guest) as (vm, memory, control):
        started = time.monotonic()
        outcome = vm.run(10)
        elapsed = time.monotonic() - started
        assert (outcome.reason, outcome.status) == (base.DEBUG_EXIT, 0), outcome.detail
        assert guest.count(memory) == 50
        assert elapsed >= 0.045                       # 50 ticks of 1 ms, no faster
        master = vm.pic_state(kc.KVM_IRQCHIP_PIC_MASTER)
        assert (master.irq_base, master.imr) == (0x20, 0xFE)
        assert vm.exit_counts() == {"io": 1}          # PIC, PIT and HLT all stayed in KVM


def test_pic_pit_and_port_0x61_never_reach_the_bus():
    ports = PortBus()
    # in $0x61, %al; in $0x21, %al; in $0x40, %al; in $0xa1, %al; in $0x43... (write-only; KVM's)
    code = b"\xe4\x61\xe4\x21\xe4\x40\xe4\xa1\xe4\x20\xf4"
    with booted("kvm", IrqGuest(), ports) as (vm, memory, control):
        memory.write(bench.CODE, code)
        assert vm.run(5).reason == base.HALT
        assert vm.exit_counts().get("io", 0) == 0
        assert ports.unclaimed_reads == 0


def test_pit_channel_2_counts_down_behind_port_0x61():
    """KVM_PIT_SPEAKER_DUMMY: port 0x61 gates channel 2 and shows its OUT (bit 5), in KVM,
    as a guest calibrating its TSC against the PIT expects."""
    code = (b"\xe4\x61\x24\xfc\x0c\x01\xe6\x61"     # in $0x61,%al; and $0xfc,%al; or $1,%al; out %al,$0x61
            + b"\xb0\xb0\xe6\x43"                     # mov $0xb0,%al; out %al,$0x43: ch 2, LSB+MSB, mode 0
            + b"\xb0\xa9\xe6\x42\xb0\x04\xe6\x42"     # count 0x04a9 (1193: 1 ms)
            + b"\x31\xc9"                               # xor %ecx,%ecx
            + b"\xff\xc1\xe4\x61\xa8\x20\x74\xf8"     # 1: inc %ecx; in $0x61,%al; test $0x20,%al; jz 1b
            + b"\xf4")                                   # hlt
    with booted("kvm", IrqGuest()) as (vm, memory, control):
        memory.write(bench.CODE, code)
        assert vm.run(5).reason == base.HALT
        assert vm.get_state().regs["rcx"] > 1         # OUT was low, then rose at terminal count
        assert vm.exit_counts().get("io", 0) == 0


# --- HLT ----------------------------------------------------------------------------------------------

def test_hlt_with_interrupts_off_ends_the_run_even_while_the_timer_ticks():
    """The 20th tick's handler halts with IF=0: the PIT keeps raising IRQ 0, which cannot wake it."""
    guest = IrqGuest(pit_hz=1000, stop_after=20, stop="hlt")
    with booted("kvm", guest) as (vm, memory, control):
        outcome = vm.run(10)
        assert outcome.reason == base.HALT, outcome.detail         # (not the timeout)
        assert "hlt with interrupts disabled" in outcome.detail
        assert guest.count(memory) == 20


def test_hlt_with_interrupts_off_ends_the_run_at_once():
    with booted("kvm", IrqGuest()) as (vm, memory, control):
        memory.write(bench.CODE, b"\x90\xf4")         # nop; hlt (IF=0)
        outcome = vm.run(60)
        assert outcome.reason == base.HALT and outcome.rip == bench.CODE + 2      # (not the timeout)


@pytest.mark.host_speed
def test_sleeping_guest_costs_little_host_cpu():
    """1 s in HLT woken 100 times a second by the PIT: the host pays for the ticks only."""
    result = bench.sleep_cost("kvm", seconds=1.0, hz=100)
    assert result["ticks"] == 100
    assert 0.95 <= result["wall"] < 2.0
    assert result["cpu_percent"] < 10, result


def test_without_irqchip_hlt_exits_to_the_vmm():
    from vmm.arch.x86.cpuid import build_table
    from vmm.engines.kvm import KvmEngine
    from vmm.devices.bus import MmioBus
    from vmm.memory import GuestMemory
    from vmm.outcome import RunControl
    guest = IrqGuest()
    with GuestMemory(bench.MEM_SIZE) as memory:
        guest.load(memory)
        memory.write(bench.CODE, b"\xf4")
        with KvmEngine(memory, PortBus(), MmioBus(), RunControl(), build_table(KvmEngine.tsc_khz()),
                       irqchip=False) as vm:
            vm.set_state(guest.state())
            assert vm.run(5).reason == base.HALT
            assert vm.exit_counts() == {"hlt": 1}             # a real exit, no kick
            with pytest.raises(VmmError, match="irqchip=False"):
                vm.irq_line(4)


# --- the watchdog's halt check, without KVM ---------------------------------------------------------

def test_halt_watch_kicks_once_per_long_hlt():
    from vmm.engines.kvm_halt import HaltWatch
    watch = HaltWatch.__new__(HaltWatch)
    samples = iter([(0, 5), (1, 6), (1, 7), (1, 7), (1, 7), (1, 8), (0, 8), (1, 9), (1, 9)])
    watch._read = lambda: next(samples)
    watch.reset()
    # running; new HLT; another (ticks wake it); same HLT twice: kick; no more kicks for it;
    # a new HLT; running; HLT 9 seen twice: kick.
    assert [watch.due() for _ in range(9)] == [False, False, False, True, False, False, False, False, True]


def test_a_linux_boot_masks_the_in_kernel_lint0(requires_kvm):
    """KVM resets LINT0 to ExtINT (the virtual wire); for Linux the engine masks it, as firmware
    would, so that the in-kernel 8259A nobody programs cannot deliver ISA IRQs as vectors 0-15."""
    from vmm.arch.x86.cpuid import build_table
    from vmm.devices.bus import MmioBus, PortBus
    from vmm.engines.kvm import KvmEngine
    from vmm.kvm.vcpu import LAPIC_LVT_LINT0, LAPIC_LVT_MASKED
    from vmm.memory import GuestMemory
    from vmm.outcome import RunControl
    with GuestMemory(2 << 20) as memory, \
            KvmEngine(memory, PortBus(), MmioBus(), RunControl(), build_table(KvmEngine.tsc_khz())) as engine:
        vcpu = engine._vcpu
        assert vcpu.get_lapic_register(LAPIC_LVT_LINT0) == 0x700          # ExtINT, unmasked
        engine.leave_lint0_masked()
        assert vcpu.get_lapic_register(LAPIC_LVT_LINT0) == 0x700 | LAPIC_LVT_MASKED
