"""The software engine's guest clock, and its PC platform's routing of interrupt inputs
through the IOAPIC and the local APIC (with the 8259A behind LINT0)."""
from vmm import layout
from vmm.devices.bus import MmioBus, PortBus
from vmm.devices import ioapic as I
from vmm.devices import lapic as L
from vmm.engines.guest_clock import MAX_LEAD_NS, SKIP_HORIZON_NS, GuestClock
from vmm.engines.pc_platform import PcPlatform


class HostClock:
    def __init__(self):
        self.ns = 5_000_000_000

    def __call__(self):
        return self.ns


def test_the_clock_follows_the_host_and_skips_only_when_allowed():
    host = HostClock()
    clock = GuestClock(tsc_hz=2_000_000_000, host_ns=host)
    host.ns += 1000
    assert clock.ns() == host.ns and clock.tsc() == 2000
    assert not clock.skip_to(clock.ns() + 10_000)          # off by default: wait in real time
    clock.skip_idle = True
    target = clock.ns() + 10_000_000
    assert clock.skip_to(target) and clock.ns() == target and clock.lead_ns == 10_000_000
    assert clock.host_ns(target) == host.ns
    assert not clock.skip_to(clock.ns() + SKIP_HORIZON_NS + 1)     # too far: wait for it
    clock.lead_ns = MAX_LEAD_NS - 5
    assert not clock.skip_to(clock.ns() + 10)              # the lead is used up
    assert clock.skip_to(clock.ns() - 1)                   # a deadline already passed


def platform():
    intr = []
    mmio = MmioBus()
    clock = GuestClock(tsc_hz=1_000_000_000, host_ns=HostClock())
    p = PcPlatform(PortBus(), mmio, clock, on_intr=intr.append)
    return p, mmio, intr


def program_ioapic(mmio, pin, entry):
    mmio.write(layout.IOAPIC_BASE + I.IOREGSEL, 4, I.REG_REDIRECTION + 2 * pin)
    mmio.write(layout.IOAPIC_BASE + I.IOWIN, 4, entry)


def test_an_isa_line_reaches_the_cpu_through_the_ioapic_and_the_lapic():
    p, mmio, intr = platform()
    p.mask_lint0()                                          # as for a Linux boot
    mmio.write(layout.LAPIC_BASE + L.SVR, 4, L.SVR_ENABLE | 0xFF)
    program_ioapic(mmio, 5, 0x35 | I.LEVEL_TRIGGERED)
    line = p.line(5)
    line(True)
    assert p.intr and intr == [True]
    assert p.acknowledge() == 0x35
    assert not p.intr                                       # in service; remote IRR holds the pin
    mmio.write(layout.LAPIC_BASE + L.EOI, 4, 0)             # still asserted: delivered again
    assert p.intr and p.acknowledge() == 0x35
    line(False)
    mmio.write(layout.LAPIC_BASE + L.EOI, 4, 0)
    assert not p.intr


def test_the_pic_reaches_the_cpu_only_through_an_unmasked_lint0():
    p, mmio, intr = platform()
    p.pic.master.write(1, 1, 0xFF)                          # (uninitialized: IMR 0 until now)
    p.pic.master.write(1, 1, 0x00)
    line = p.line(4)
    line(True)
    assert p.intr                                           # reset state: virtual wire
    line(False)
    p.mask_lint0()
    line(True)
    assert not p.intr                                       # Linux's state: the PIC is cut off


def test_the_lapic_timer_is_one_of_the_platform_timers():
    p, mmio, intr = platform()
    mmio.write(layout.LAPIC_BASE + L.SVR, 4, L.SVR_ENABLE | 0xFF)
    mmio.write(layout.LAPIC_BASE + L.TIMER_DIVIDE, 4, 0b1011)
    mmio.write(layout.LAPIC_BASE + L.LVT_TIMER, 4, 0xEC)
    mmio.write(layout.LAPIC_BASE + L.TIMER_INITIAL, 4, 1_000_000)   # 1 ms at 1 GHz
    _, deadline = p.update()
    assert deadline == p.clock.ns() + 1_000_000
    p.clock.skip_idle = True
    p.clock.skip_to(deadline)
    pending, _ = p.update()
    assert pending and p.acknowledge() == 0xEC
