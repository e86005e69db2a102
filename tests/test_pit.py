"""8254 behaviour, against the Intel datasheet, driven by a fake host clock."""
from vmm import layout
from vmm.devices import pit as t
from vmm.devices.pic import DualPic
from vmm.devices.pit import Pit8254, SystemControlPortB

HZ = layout.PIT_INPUT_HZ
CH0, CH1, CH2, CONTROL = 0, 1, 2, 3


def clocks(k):
    """The host nanoseconds for k input clocks, rounded up: the first instant k have passed."""
    return -(-k * 1_000_000_000 // HZ)


class Clock:
    def __init__(self):
        self.now = 1_000_000_000            # any origin: only differences matter

    def __call__(self):
        return self.now

    def advance_clocks(self, k):
        self.now += clocks(k)


def make():
    clock, levels = Clock(), []
    return Pit8254(irq=levels.append, now_ns=clock), clock, levels


def program(pit, channel, mode, count, access=t.ACCESS_LSB_MSB, bcd=False):
    pit.write(CONTROL, 1, channel << 6 | access << 4 | mode << 1 | int(bcd))
    if access in (t.ACCESS_LSB, t.ACCESS_LSB_MSB):
        pit.write(channel, 1, count & 0xFF)
    if access in (t.ACCESS_MSB, t.ACCESS_LSB_MSB):
        pit.write(channel, 1, count >> 8 & 0xFF)


def read_count(pit, channel):
    """Latch, then read LSB and MSB, as Linux's PIT clocksource does."""
    pit.write(CONTROL, 1, channel << 6)
    low = pit.read(channel, 1)
    return low | pit.read(channel, 1) << 8


def status(pit, channel):
    pit.write(CONTROL, 1, 0xC0 | t.RB_NO_COUNT | t.RB_CHANNEL_0 << channel)
    return pit.read(channel, 1)


def test_mode2_rate_generator_period_and_irq_edges():
    pit, clock, levels = make()
    program(pit, CH0, 2, 1193)                          # Linux's 1000 Hz tick (0x34)
    assert levels == [True]                             # OUT high after the control word
    assert pit.next_deadline_ns() == clock.now + clocks(1193)
    clock.advance_clocks(1192)
    assert not pit.update() and levels == [True]
    assert read_count(pit, CH0) == 1                    # OUT is low for this last clock
    assert not pit.output(0)
    clock.advance_clocks(1)
    assert pit.update()
    assert levels == [True, False, True]                # one rising edge, sent as a pulse
    assert read_count(pit, CH0) == 1193 and pit.output(0)
    assert not pit.update()                             # reported once
    clock.advance_clocks(1193)
    assert pit.update() and levels[-2:] == [False, True]


def test_missed_periods_coalesce_into_one_edge():
    pit, clock, levels = make()
    program(pit, CH0, 2, 1193)
    start = clock.now
    clock.advance_clocks(5 * 1193 + 10)
    assert pit.next_deadline_ns() == start + clocks(1193)   # in the past: update now
    assert pit.update()
    assert levels == [True, False, True] and pit.lost_ticks == 4
    assert pit.next_deadline_ns() == start + clocks(6 * 1193)


def test_irq_edges_reach_the_pic_and_coalesce_in_irr():
    clock = Clock()
    pics = DualPic()
    pit = Pit8254(irq=lambda level: pics.set_irq(layout.PIT_IRQ, level), now_ns=clock)
    for value in (0x11, 0x20, 0x04, 0x01):
        pics.master.write(0 if value == 0x11 else 1, 1, value)
    program(pit, CH0, 2, 100)
    clock.advance_clocks(100)
    pit.update()
    assert pics.acknowledge() == 0x20
    clock.advance_clocks(300)                           # three ticks while IRQ 0 is in service
    pit.update()
    pics.master.write(0, 1, 0x20)                       # EOI
    assert pics.pending() and pics.acknowledge() == 0x20
    pics.master.write(0, 1, 0x20)
    assert not pics.pending()


def test_count_zero_means_65536():
    pit, clock, _ = make()
    program(pit, CH0, 2, 0)
    assert pit.next_deadline_ns() == clock.now + clocks(65536)
    clock.advance_clocks(1)
    assert read_count(pit, CH0) == 0xFFFF


def test_mode3_square_wave():
    pit, clock, levels = make()
    program(pit, CH0, 3, 1000)
    start = clock.now
    assert pit.output(0) and read_count(pit, CH0) == 1000
    clock.advance_clocks(100)
    assert read_count(pit, CH0) == 800                  # counts down by two
    clock.advance_clocks(400)                           # half a period: OUT falls
    assert not pit.output(0) and status(pit, CH0) & t.STATUS_OUT == 0
    assert read_count(pit, CH0) == 1000                 # reloaded for the low half
    assert not pit.update() and levels == [True]        # the line is held high
    clock.advance_clocks(500)
    assert pit.output(0) and pit.update() and levels == [True, False, True]
    assert pit.next_deadline_ns() == start + clocks(2000)


def test_mode3_odd_count_has_the_longer_half_high():
    pit, clock, _ = make()
    program(pit, CH2, 3, 5)
    pit.set_gate(2, True)
    outs = []
    for _ in range(10):
        outs.append(pit.output(2))
        clock.advance_clocks(1)
    assert outs == [True, True, True, False, False] * 2


def test_mode0_interrupt_on_terminal_count_is_one_shot():
    pit, clock, levels = make()
    program(pit, CH0, 0, 500)
    assert levels == [] and not pit.output(0)           # OUT low from the control word on
    assert pit.next_deadline_ns() == clock.now + clocks(500)
    clock.advance_clocks(499)
    assert not pit.update() and read_count(pit, CH0) == 1
    clock.advance_clocks(1)
    assert pit.update() and levels == [True] and pit.output(0)
    assert pit.next_deadline_ns() is None
    clock.advance_clocks(100_000)
    assert not pit.update() and levels == [True]
    assert read_count(pit, CH0) == (500 - 100_500) % 65536  # the counter keeps wrapping
    program(pit, CH0, 0, 10)                            # rearming drops OUT (and the line)
    assert levels == [True, False]


def test_mode0_first_byte_of_a_new_count_stops_counting():
    pit, clock, levels = make()
    program(pit, CH0, 0, 100)
    clock.advance_clocks(100)
    pit.update()
    pit.write(CH0, 1, 0x50)                             # LSB: counting stops, OUT low
    assert not pit.output(0) and levels == [True, False]
    assert pit.next_deadline_ns() is None
    clock.advance_clocks(1000)
    pit.write(CH0, 1, 0x00)                             # MSB: count 0x50 starts now
    assert pit.next_deadline_ns() == clock.now + clocks(0x50)


def test_lsb_only_msb_only_and_lsb_msb_access():
    pit, clock, _ = make()
    program(pit, CH1, 2, 0x34, access=t.ACCESS_LSB)
    assert pit.read(CH1, 1) == 0x34
    assert pit.read(CH1, 1) == 0x34                     # no toggle: LSB every time
    program(pit, CH1, 2, 0x1200, access=t.ACCESS_MSB)
    assert pit.read(CH1, 1) == 0x12
    program(pit, CH1, 2, 0x1234)
    clock.advance_clocks(0x10)
    assert pit.read(CH1, 1) == 0x24                     # live reads toggle LSB, MSB
    assert pit.read(CH1, 1) == 0x12
    assert pit.read(CH1, 1) == 0x24


def test_reads_and_writes_toggle_independently():
    pit, _, _ = make()
    pit.write(CONTROL, 1, 0x74)                         # channel 1, LSB/MSB, mode 2
    pit.write(CH1, 1, 0x00)
    pit.write(CH1, 1, 0x10)                             # 0x1000
    assert pit.read(CH1, 1) == 0x00                     # datasheet: read LSB,
    pit.write(CH1, 1, 0x00)                             # write LSB,
    assert pit.read(CH1, 1) == 0x10                     # read MSB,
    pit.write(CH1, 1, 0x20)                             # write MSB is valid


def test_latch_command_freezes_the_count_until_read():
    pit, clock, _ = make()
    program(pit, CH0, 2, 10_000)
    clock.advance_clocks(1000)
    pit.write(CONTROL, 1, 0x00)                         # latch channel 0
    clock.advance_clocks(2000)
    pit.write(CONTROL, 1, 0x00)                         # a second latch is ignored
    assert pit.read(CH0, 1) == 9000 & 0xFF
    clock.advance_clocks(500)
    assert pit.read(CH0, 1) == 9000 >> 8
    assert read_count(pit, CH0) == 10_000 - 3500        # then live again


def test_read_back_latches_status_then_count():
    pit, clock, _ = make()
    pit.write(CONTROL, 1, 0x34)                         # channel 0, LSB/MSB, mode 2
    assert status(pit, CH0) == t.STATUS_OUT | t.STATUS_NULL_COUNT | 0x34
    pit.write(CH0, 1, 0xE8)
    pit.write(CH0, 1, 0x03)                             # 1000
    clock.advance_clocks(250)
    pit.write(CONTROL, 1, 0xC0 | t.RB_CHANNEL_0 | t.RB_CHANNEL_0 << 2)   # count + status, ch 0, 2
    clock.advance_clocks(100)
    assert pit.read(CH0, 1) == t.STATUS_OUT | 0x34      # loaded: null count clear
    assert pit.read(CH0, 1) == 750 & 0xFF
    assert pit.read(CH0, 1) == 750 >> 8
    assert pit.read(CH2, 1) == t.STATUS_NULL_COUNT | 0x30   # never programmed: no count
    assert pit.read(CONTROL, 1) == 0xFF                 # the control port is write-only


def test_mode2_new_count_takes_effect_at_the_end_of_the_period():
    pit, clock, levels = make()
    program(pit, CH0, 2, 1000)
    start = clock.now
    clock.advance_clocks(300)
    pit.write(CH0, 1, 0xF4)
    pit.write(CH0, 1, 0x01)                             # 500
    assert status(pit, CH0) & t.STATUS_NULL_COUNT
    assert read_count(pit, CH0) == 700                  # the current period runs on
    assert pit.next_deadline_ns() == start + clocks(1000)
    clock.advance_clocks(700)
    assert pit.update()
    assert pit.next_deadline_ns() == start + clocks(1500)
    clock.advance_clocks(100)
    assert read_count(pit, CH0) == 400
    assert not status(pit, CH0) & t.STATUS_NULL_COUNT


def test_bcd_counting():
    pit, clock, _ = make()
    program(pit, CH2, 0, 0x1000, bcd=True)              # 1000 decimal
    pit.set_gate(2, True)
    clock.advance_clocks(1)
    assert read_count(pit, CH2) == 0x0999
    assert status(pit, CH2) & t.CW_BCD
    program(pit, CH2, 0, 0x0000, bcd=True)              # 0 is 10000 in BCD
    clock.advance_clocks(1)
    assert read_count(pit, CH2) == 0x9999


def test_gate_low_suspends_mode0_and_restarts_mode2():
    pit, clock, _ = make()
    program(pit, CH2, 0, 100)                           # channel 2's gate starts low
    clock.advance_clocks(50)
    assert read_count(pit, CH2) == 100                  # loaded, not counting
    pit.set_gate(2, True)
    clock.advance_clocks(30)
    pit.set_gate(2, False)
    clock.advance_clocks(30)
    assert read_count(pit, CH2) == 70
    program(pit, CH2, 2, 100)
    assert pit.output(2)
    pit.set_gate(2, True)
    clock.advance_clocks(99)
    assert not pit.output(2)
    pit.set_gate(2, False)                              # a low gate forces OUT high
    assert pit.output(2)
    pit.set_gate(2, True)                               # the rising edge reloads the count
    assert read_count(pit, CH2) == 100


def test_modes_1_4_and_5():
    pit, clock, _ = make()
    program(pit, CH2, 1, 10)                            # gate-triggered one-shot
    clock.advance_clocks(50)
    assert pit.output(2)                                # nothing until the trigger
    pit.set_gate(2, True)
    assert not pit.output(2)
    clock.advance_clocks(10)
    assert pit.output(2)
    program(pit, CH2, 4, 10)                            # software-triggered strobe
    clock.advance_clocks(10)
    assert not pit.output(2)                            # low for one clock
    clock.advance_clocks(1)
    assert pit.output(2)
    pit.set_gate(2, False)
    program(pit, CH2, 5, 10)                            # gate-triggered strobe
    clock.advance_clocks(10)
    assert pit.output(2)
    pit.set_gate(2, True)
    clock.advance_clocks(10)
    assert not pit.output(2)


def test_mode4_on_channel_0_sends_one_edge_at_the_end_of_the_strobe():
    pit, clock, levels = make()
    program(pit, CH0, 4, 10)
    assert pit.next_deadline_ns() == clock.now + clocks(11)
    clock.advance_clocks(11)
    assert pit.update() and levels == [True, False, True]
    assert pit.next_deadline_ns() is None


def test_unprogrammed_pit_is_silent():
    pit, clock, levels = make()
    clock.advance_clocks(10**9)
    assert not pit.update() and levels == [] and pit.next_deadline_ns() is None


def test_port_61_calibrate_tsc_sequence():
    """Linux's pit_calibrate_tsc(): gate on, speaker off, channel 2 mode 0, poll bit 5."""
    pit, clock, _ = make()
    port = SystemControlPortB(pit)
    assert port.read(0, 1) & t.PORTB_TIMER2_OUT == 0
    port.write(0, 1, (port.read(0, 1) & ~t.PORTB_SPEAKER_DATA) | t.PORTB_TIMER2_GATE)
    pit.write(CONTROL, 1, 0xB0)                         # channel 2, LSB/MSB, mode 0
    latch = HZ // (1000 // 50)                          # 50 ms
    pit.write(CH2, 1, latch & 0xFF)
    pit.write(CH2, 1, latch >> 8)
    polls = 0
    while not port.read(0, 1) & t.PORTB_TIMER2_OUT:
        clock.advance_clocks(1000)
        polls += 1
    assert polls == -(-latch // 1000)
    assert port.read(0, 1) & t.PORTB_TIMER2_GATE


def test_port_61_refresh_bit_toggles_and_gate_bit_reads_back():
    pit, _, _ = make()
    port = SystemControlPortB(pit)
    first, second = port.read(0, 1), port.read(0, 1)
    assert (first ^ second) == t.PORTB_REFRESH
    port.write(0, 1, 0xFF)
    assert port.read(0, 1) & 0xCF == t.PORTB_WRITABLE   # bits 6-7 read 0
    assert pit.channels[2].gate


def test_quick_pit_calibrate_reads_the_msb_live():
    """Linux's quick_pit_calibrate(): count from 0xFFFF, read LSB then MSB without a latch."""
    pit, clock, _ = make()
    port = SystemControlPortB(pit)
    port.write(0, 1, t.PORTB_TIMER2_GATE)
    pit.write(CONTROL, 1, 0xB0)
    pit.write(CH2, 1, 0xFF)
    pit.write(CH2, 1, 0xFF)
    clock.advance_clocks(256 * 3 + 7)
    pit.read(CH2, 1)
    assert pit.read(CH2, 1) == 0xFC
