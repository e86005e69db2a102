"""The local APIC model (the software engine's): MMIO registers, the timer in its three
modes on a fake clock, priorities, EOI, spurious vector, self-IPI, MSRs."""
import pytest

from vmm.devices import lapic as L


class Clock:
    def __init__(self):
        self.ns = 1_000_000

    def __call__(self):
        return self.ns


@pytest.fixture
def clock():
    return Clock()


def make(clock, **kw):
    eois = []
    apic = L.LocalApic(now_ns=clock, on_eoi=eois.append, **kw)
    apic.eois = eois
    apic.write(L.SVR, 4, L.SVR_ENABLE | 0xFF)      # software-enable, spurious vector 0xFF
    return apic


def test_reset_state_and_identity(clock):
    apic = L.LocalApic(now_ns=clock, apic_id=0)
    assert apic.read(L.VERSION, 4) & 0xFF == 0x14 and apic.read(L.VERSION, 4) >> 16 == 6
    assert apic.read(L.ID, 4) == 0 and apic.read(L.SVR, 4) == 0xFF
    assert apic.read_msr(L.APIC_BASE_MSR) == 0xFEE00000 | L.BASE_BSP | L.BASE_ENABLE
    assert apic.read(L.LVT_TIMER, 4) & L.LVT_MASKED
    assert apic.accepts_pic()                       # virtual wire until the guest masks LINT0
    apic.write(L.SVR, 4, L.SVR_ENABLE | 0xFF)
    apic.write(L.LVT_LINT0, 4, L.LVT_MASKED | L.DELIVERY_EXTINT)
    assert not apic.accepts_pic()


def test_one_shot_timer_fires_once_at_its_deadline(clock):
    apic = make(clock)
    apic.write(L.TIMER_DIVIDE, 4, 0b1011)            # divide by 1: one count per bus cycle (1 ns)
    apic.write(L.LVT_TIMER, 4, 0x30)
    apic.write(L.TIMER_INITIAL, 4, 5000)
    assert apic.next_deadline_ns() == clock.ns + 5000
    clock.ns += 2000
    assert apic.read(L.TIMER_CURRENT, 4) == 3000
    apic.update()
    assert apic.pending_vector() is None
    clock.ns += 3000
    apic.update()
    assert apic.pending_vector() == 0x30 and apic.next_deadline_ns() is None
    assert apic.read(L.TIMER_CURRENT, 4) == 0
    assert apic.acknowledge() == 0x30
    assert apic.read(L.ISR + 0x10, 4) == 1 << 16     # vector 0x30 in ISR (bits 32-63 register)
    apic.write(L.EOI, 4, 0)
    assert apic.isr == 0 and apic.eois == []         # edge: no EOI broadcast


def test_periodic_timer_reloads_and_coalesces_missed_ticks(clock):
    apic = make(clock)
    apic.write(L.TIMER_DIVIDE, 4, 0b0001)            # divide by 4
    apic.write(L.LVT_TIMER, 4, L.TIMER_PERIODIC << L.TIMER_MODE_SHIFT | 0x40)
    start = clock.ns
    apic.write(L.TIMER_INITIAL, 4, 250)              # 1000 ns period
    clock.ns = start + 1000
    apic.update()
    assert apic.acknowledge() == 0x40
    apic.write(L.EOI, 4, 0)
    clock.ns = start + 5500                          # four periods later: one interrupt, next at 6000
    apic.update()
    assert apic.acknowledge() == 0x40 and apic.next_deadline_ns() == start + 6000
    apic.write(L.TIMER_INITIAL, 4, 0)                # writing 0 stops it
    assert apic.next_deadline_ns() is None


def test_tsc_deadline_mode(clock):
    apic = make(clock, tsc_hz=2_000_000_000)          # 2 ticks per ns
    apic.write(L.LVT_TIMER, 4, L.TIMER_TSC_DEADLINE << L.TIMER_MODE_SHIFT | 0x50)
    apic.write_msr(L.TSC_DEADLINE_MSR, (clock.ns + 100) * 2)
    assert apic.next_deadline_ns() == clock.ns + 100
    assert apic.read(L.TIMER_CURRENT, 4) == 0        # TMCCT reads 0 in this mode
    clock.ns += 100
    apic.update()
    assert apic.pending_vector() == 0x50 and apic.read_msr(L.TSC_DEADLINE_MSR) == 0
    apic.write_msr(L.TSC_DEADLINE_MSR, 1)             # a deadline in the past fires at once
    assert apic.irr >> 0x50 & 1


def test_masked_timer_sets_nothing(clock):
    apic = make(clock)
    apic.write(L.LVT_TIMER, 4, L.LVT_MASKED | 0x30)
    apic.write(L.TIMER_INITIAL, 4, 1)
    clock.ns += 10
    apic.update()
    assert apic.irr == 0


def test_priorities_tpr_and_nesting(clock):
    apic = make(clock)
    apic.accept(0x41)
    apic.write(L.TPR, 4, 0x40)                       # same class as 0x41: blocked
    assert apic.pending_vector() is None and apic.read(L.PPR, 4) == 0x40
    apic.write(L.TPR, 4, 0)
    assert apic.acknowledge() == 0x41
    apic.accept(0x35)                                # lower class than the one in service: waits
    assert apic.pending_vector() is None and apic.read(L.PPR, 4) == 0x40
    apic.accept(0x62)                                # higher class: nests
    assert apic.acknowledge() == 0x62
    apic.write(L.EOI, 4, 0)                          # ends 0x62, the highest in service
    assert apic.isr == 1 << 0x41
    apic.write(L.EOI, 4, 0)
    assert apic.acknowledge() == 0x35


def test_spurious_vector_when_the_request_vanished(clock):
    apic = make(clock)
    assert apic.acknowledge() == 0xFF and apic.isr == 0


def test_level_interrupt_eoi_is_broadcast(clock):
    apic = make(clock)
    apic.accept(0x33, level=True)
    assert apic.read(L.TMR + 0x10, 4) == 1 << 0x13
    assert apic.acknowledge() == 0x33
    apic.write(L.EOI, 4, 0)
    assert apic.eois == [0x33]


def test_self_ipi(clock):
    apic = make(clock)
    apic.write(L.ICR_LOW, 4, L.SHORTHAND_SELF << L.ICR_SHORTHAND_SHIFT | 0x77)
    assert apic.pending_vector() == 0x77
    apic.write(L.ICR_HIGH, 4, 0x01 << 24)            # to another APIC: nobody is there
    apic.write(L.ICR_LOW, 4, 0x78)
    assert not apic.irr >> 0x78 & 1


def test_software_disabled_apic_accepts_nothing_and_masks_lvts(clock):
    apic = make(clock)
    apic.write(L.LVT_TIMER, 4, 0x30)
    apic.write(L.SVR, 4, 0xFF)                       # software disable
    assert apic.read(L.LVT_TIMER, 4) & L.LVT_MASKED
    apic.accept(0x40)
    assert apic.pending_vector() is None


def test_illegal_vectors_set_esr(clock):
    apic = make(clock)
    apic.accept(3)
    assert apic.irr == 0 and apic.read(L.ESR, 4) & 1 << 6
    apic.write(L.ESR, 4, 0)
    assert apic.read(L.ESR, 4) == 0


def test_global_disable_through_the_msr_resets(clock):
    apic = make(clock)
    apic.accept(0x40)
    apic.write_msr(L.APIC_BASE_MSR, 0xFEE00000 | L.BASE_BSP)
    assert not apic.hardware_enabled and apic.irr == 0 and apic.accepts_pic()
