"""The Intel 8254 programmable interval timer, and the PC's port 0x61 that gates channel 2.

Only the software (unicorn) engine uses this model: on KVM the in-kernel PIT plays this
part. Register semantics follow the Intel 8254 datasheet; QEMU hw/timer/i8254*.c is a
readable peer. The counters run at layout.PIT_INPUT_HZ against a host clock (`now_ns`,
default time.monotonic_ns): a read computes the count from the time elapsed since the
count was loaded, so there is no thread and no per-tick work.

What is modelled, per channel: the control word (channel, access mode, mode 0-5, BCD), the
counter latch and read-back commands (count and status), the LSB/MSB toggles of reads and
writes, count 0 meaning 65536 (10000 in BCD), modes 0 (interrupt on terminal count),
1 (gate-triggered one-shot), 2 (rate generator), 3 (square wave), 4 (software strobe) and
5 (gate-triggered strobe), with GATE suspending (0, 2, 3, 4) or triggering (1, 2, 3, 5)
as the datasheet's table says. A new count written during counting in modes 2 and 3 takes
effect at the end of the current period (the datasheet says half-cycle for mode 3).
Not modelled: the one-clock delay between a count write and its load (counting starts at
the write), and the exact mode 3 count sequence for odd counts (within a clock).
Channels 0 and 1 have their gate tied high, as on a PC; channel 2's is port 0x61 bit 0.

Channel 0 drives IRQ 0 through `irq(level)`, and only when the engine calls `update()`:
- Each rising edge of OUT becomes a rising edge of the IRQ line. Modes 0 and 1 drive the
  line at OUT's level. In modes 2-5 the line is held high and each new edge is sent as a
  low-high pulse: their low phases (one clock in 2, 4, 5; half a period in 3) are folded
  into the pulse, so a tick the guest has not yet acknowledged is never withdrawn by the
  falling half of a mode 3 wave (the PIC drops a request whose line falls before INTA).
- Missed ticks coalesce: if several periods passed since the last `update()` (the host was
  busy), the line gets one edge, as on hardware where IRR holds one bit per line. The
  number of ticks merged away is counted in `lost_ticks`.
"""
import time

from .. import layout

# Port offsets from layout.PIT_PORT.
CHANNEL_PORTS = 3       # offsets 0-2: the channels' count registers
CONTROL = 3             # the control word register (write-only)

# The control word: SC1 SC0 RW1 RW0 M2 M1 M0 BCD.
CW_SELECT_SHIFT = 6
CW_READ_BACK = 3        # SC = 11: the read-back command
CW_ACCESS_SHIFT = 4
ACCESS_LATCH = 0        # RW = 00: the counter latch command
ACCESS_LSB = 1
ACCESS_MSB = 2
ACCESS_LSB_MSB = 3
CW_MODE_SHIFT = 1
CW_BCD = 0x01

# The read-back command: 11 ~COUNT ~STATUS CNT2 CNT1 CNT0 0.
RB_NO_COUNT = 0x20
RB_NO_STATUS = 0x10
RB_CHANNEL_0 = 0x02     # CNT0; CNT1 and CNT2 follow

# The status byte of a read-back.
STATUS_OUT = 0x80
STATUS_NULL_COUNT = 0x40

BINARY_MODULUS = 1 << 16
BCD_MODULUS = 10_000
NS_PER_S = 1_000_000_000
FLOATING_BUS = 0xFF     # the control port is write-only: nothing drives the data lines


class Channel:
    """One counter. Time is counted in input clocks `e` elapsed since the count was loaded
    (frozen while GATE suspends counting); the OUT level, the count and the rising edges of
    OUT are all functions of `e`."""

    def __init__(self, gate: bool):
        self.mode = None                # 0-5; None until the first control word
        self.mode_bits = 0              # M2-M0 as written (modes 6 and 7 alias 2 and 3)
        self.access = ACCESS_LSB_MSB
        self.bcd = False
        self.gate = gate
        self.cr = None                  # the count register: the last full count written
        self.n = 0                      # the count the current sequence runs with
        self.loaded = False             # a counting sequence is under way
        self.running = False            # ... and advancing (not suspended by GATE)
        self.null_count = True          # a count is written but not yet loaded
        self.edges_seen = 0             # rising edges of OUT already reported (channel 0)
        self._origin_ns = 0             # host time when `e` was `_origin_e`
        self._origin_e = 0
        self._seq_start = 0             # e at which `n` took effect (modes 2, 3)
        self._edge_base = 0             # rising edges before `_seq_start`
        self._reload_at = None          # e at which `cr` replaces `n` (modes 2, 3)
        self._write_lsb = None          # the LSB of an LSB-then-MSB write awaiting its MSB
        self._msb_next = False          # the next live LSB-then-MSB read returns the MSB
        self._latched = []              # latched count bytes, in read order
        self._status = None             # a latched status byte

    # --- snapshots: `elapsed` input clocks instead of host times (devices/state.py) -----------
    STATE_FIELDS = ("mode", "mode_bits", "access", "bcd", "gate", "cr", "n", "loaded", "running", "null_count",
                    "edges_seen", "_seq_start", "_edge_base", "_reload_at", "_write_lsb", "_msb_next", "_latched",
                    "_status")

    def save_state(self, now: int) -> dict:
        from .state import pick
        return dict(pick(self, self.STATE_FIELDS), elapsed=self._elapsed(now))

    def load_state(self, state: dict, now: int) -> None:
        from .state import StateError, need, put
        put(self, state, self.STATE_FIELDS)
        if self.mode is not None and not 0 <= self.mode <= 5 or self.loaded and self.n <= 0:
            raise StateError("8254: a channel's mode or count is out of range")
        self._origin_e, self._origin_ns = need(state, "elapsed", int, "8254"), now

    # --- the guest's view -------------------------------------------------------------------
    def program(self, value: int) -> None:
        """A control word with RW != 00: all control logic is reset (datasheet)."""
        self.mode_bits = (value >> CW_MODE_SHIFT) & 7
        self.mode = self.mode_bits - 4 if self.mode_bits >= 6 else self.mode_bits
        self.access = (value >> CW_ACCESS_SHIFT) & 3
        self.bcd = bool(value & CW_BCD)
        self.cr = None
        self.null_count = True
        self._stop()
        self._reload_at = None
        self._write_lsb = None
        self._msb_next = False
        self._latched = []              # a latch is held "until read or reprogrammed"
        self._status = None

    def write_count(self, value: int, now: int) -> None:
        if self.access == ACCESS_LSB:
            self._load(value, now)
        elif self.access == ACCESS_MSB:
            self._load(value << 8, now)
        elif self._write_lsb is None:
            self._write_lsb = value
            if self.mode == 0:
                self._stop()            # mode 0: the first byte stops counting, OUT goes low
        else:
            count = self._write_lsb | value << 8
            self._write_lsb = None
            self._load(count, now)

    def read(self, now: int) -> int:
        if self._status is not None:    # a latched status comes before a latched count
            status, self._status = self._status, None
            return status
        if self._latched:
            return self._latched.pop(0)
        count = self._encode(self.count(now))
        if self.access == ACCESS_LSB:
            return count & 0xFF
        if self.access == ACCESS_MSB:
            return count >> 8
        if self._msb_next:
            self._msb_next = False
            return count >> 8
        self._msb_next = True
        return count & 0xFF

    def latch_count(self, now: int) -> None:
        """The counter latch command; a second one before the count is read is ignored."""
        if self._latched:
            return
        count = self._encode(self.count(now))
        if self.access == ACCESS_LSB:
            self._latched = [count & 0xFF]
        elif self.access == ACCESS_MSB:
            self._latched = [count >> 8]
        else:
            self._latched = [count & 0xFF, count >> 8]

    def latch_status(self, now: int) -> None:
        if self._status is None:
            self._status = ((STATUS_OUT if self.out(now) else 0)
                            | (STATUS_NULL_COUNT if self.null_count else 0)
                            | self.access << CW_ACCESS_SHIFT | self.mode_bits << CW_MODE_SHIFT
                            | (CW_BCD if self.bcd else 0))

    def set_gate(self, level: bool, now: int) -> None:
        if level == self.gate:
            return
        self.gate = level
        mode = self.mode
        if mode in (0, 4):              # GATE enables counting
            if self.loaded:
                self._origin_e = self._elapsed(now)
                self._origin_ns = now
                self.running = level
        elif mode in (2, 3):            # low: suspend, OUT high; rising: reload and restart
            if not level:
                if self.loaded:
                    self._origin_e = self._elapsed(now)
                    self.running = False
            elif self.cr is not None:
                self._start(now)
        elif mode in (1, 5) and level and self.cr is not None:
            self._start(now)            # the rising edge triggers (and retriggers)

    # --- the counter's state as a function of time -----------------------------------------
    def out(self, now: int) -> bool:
        mode = self.mode
        if mode is None:
            return False
        if not self.loaded:
            return mode != 0            # OUT's level after the control word
        e = self._elapsed(now)
        if mode in (0, 1):
            return e >= self.n
        if mode in (4, 5):
            return e != self.n          # low for the one clock of the strobe
        if not self.gate:
            return True                 # modes 2, 3: a low GATE forces OUT high
        self._sync(e)
        phase = (e - self._seq_start) % self.n
        if mode == 2:
            return phase != self.n - 1  # low for the last clock of each period
        return phase < (self.n + 1) // 2

    def count(self, now: int) -> int:
        """The counting element's value (binary; 0 stands for the full modulus)."""
        if not self.loaded:
            return self.cr or 0
        e = self._elapsed(now)
        if self.mode not in (2, 3):
            return (self.n - e) % self._modulus()
        self._sync(e)
        n = self.n
        phase = (e - self._seq_start) % n
        if self.mode == 2:
            return n - phase
        # Mode 3 counts down by two, once per half period; an odd count spends one more
        # clock in the high half (datasheet: the count minus one is loaded).
        high = (n + 1) // 2
        if phase >= high:
            steps = phase - high
        else:
            steps = max(phase - 1, 0) if n & 1 else phase
        return ((n & ~1) - 2 * steps) % self._modulus()

    def edge_index(self, now: int) -> int:
        """How many rising edges OUT has had since the current sequence began."""
        if not self.loaded:
            return 0
        e = self._elapsed(now)
        if self.mode in (2, 3):
            self._sync(e)
            return self._edge_base + (e - self._seq_start) // self.n
        edge = self.n if self.mode in (0, 1) else self.n + 1
        return 1 if e >= edge else 0

    def next_edge_ns(self):
        """Host time of the first rising edge after `edges_seen`, or None. It is in the past
        when edges are waiting to be reported."""
        if not (self.loaded and self.running):
            return None
        if self.mode in (2, 3):
            want = self.edges_seen + 1
            if self._reload_at is not None:
                at_reload = self._edge_base + (self._reload_at - self._seq_start) // self.n
                if want > at_reload:
                    return self._ns_at(self._reload_at + (want - at_reload) * self.cr)
            return self._ns_at(self._seq_start + (want - self._edge_base) * self.n)
        if self.edges_seen:
            return None
        return self._ns_at(self.n if self.mode in (0, 1) else self.n + 1)

    # --- internals ---------------------------------------------------------------------------
    def _modulus(self) -> int:
        return BCD_MODULUS if self.bcd else BINARY_MODULUS

    def _encode(self, count: int) -> int:
        """The count as the 16 bits the guest reads: binary, or four BCD digits."""
        if not self.bcd:
            return count & 0xFFFF
        count %= BCD_MODULUS
        return (count // 1000 << 12 | count // 100 % 10 << 8 | count // 10 % 10 << 4
                | count % 10)

    def _decode(self, value: int) -> int:
        if self.bcd:
            value = ((value >> 12 & 0xF) * 1000 + (value >> 8 & 0xF) * 100
                     + (value >> 4 & 0xF) * 10 + (value & 0xF))
        return value or self._modulus()  # 0 is the largest count

    def _load(self, value: int, now: int) -> None:
        self.cr = self._decode(value)
        self.null_count = True
        mode = self.mode
        if mode in (0, 4):
            self._start(now)            # software-triggered: counting starts now
        elif mode in (2, 3) and self.gate:
            if not self.loaded:
                self._start(now)
            else:                       # the running period finishes with the old count
                e = self._elapsed(now)
                self._sync(e)
                periods = (e - self._seq_start) // self.n + 1
                self._reload_at = self._seq_start + periods * self.n
        # Modes 1 and 5 wait for a GATE rising edge; modes 2 and 3 with GATE low, too.

    def _start(self, now: int) -> None:
        self.n = self.cr
        self.loaded = True
        self.running = self.gate or self.mode in (1, 5)
        self.null_count = False
        self.edges_seen = 0
        self._origin_ns = now
        self._origin_e = 0
        self._seq_start = 0
        self._edge_base = 0
        self._reload_at = None

    def _stop(self) -> None:
        self.loaded = False
        self.running = False
        self.edges_seen = 0

    def _elapsed(self, now: int) -> int:
        if not self.running:
            return self._origin_e
        return self._origin_e + (now - self._origin_ns) * layout.PIT_INPUT_HZ // NS_PER_S

    def _ns_at(self, e: int) -> int:
        """The first host time at which `_elapsed` reaches `e` (rounded up)."""
        return self._origin_ns - (-(e - self._origin_e) * NS_PER_S // layout.PIT_INPUT_HZ)

    def _sync(self, e: int) -> None:
        """Apply a pending mode 2/3 reload once its period boundary has passed."""
        if self._reload_at is not None and e >= self._reload_at:
            self._edge_base += (self._reload_at - self._seq_start) // self.n
            self._seq_start = self._reload_at
            self.n = self.cr
            self._reload_at = None
            self.null_count = False


class Pit8254:
    """The three channels at layout.PIT_PORT (layout.PIT_PORT_COUNT ports).

    `irq(level)` is channel 0's output line (IRQ 0); `now_ns()` is the host clock.
    The engine calls `update()` to deliver channel 0's edges up to now, and sleeps no later
    than `next_deadline_ns()` when the guest idles.
    """

    def __init__(self, irq=None, now_ns=time.monotonic_ns):
        self._irq = irq or (lambda level: None)
        self._now = now_ns
        # Channels 0 and 1 have GATE tied high on a PC; channel 2's comes from port 0x61.
        self.channels = (Channel(gate=True), Channel(gate=True), Channel(gate=False))
        self._line = False
        self.lost_ticks = 0             # periodic ticks merged into one interrupt

    # --- snapshots (devices/state.py) ----------------------------------------------------------
    STATE_VERSION = 1

    def save_state(self) -> dict:
        now = self._now()
        return {"channels": [channel.save_state(now) for channel in self.channels], "line": self._line,
                "lost_ticks": self.lost_ticks}

    def load_state(self, state: dict) -> None:
        from .state import StateError, need, put
        channels = need(state, "channels", list, "8254")
        if len(channels) != len(self.channels):
            raise StateError("8254: three channels expected")
        now = self._now()
        for channel, channel_state in zip(self.channels, channels):
            channel.load_state(channel_state, now)
        put(self, state, ("_line", "lost_ticks"))

    # --- guest side: the bus calls these -------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset >= CHANNEL_PORTS:
            return FLOATING_BUS
        return self.channels[offset].read(self._now())

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        now = self._now()
        if offset >= CHANNEL_PORTS:
            self._control(value, now)
        elif offset == 0:
            self.update(now)            # report edges up to now before the change
            self.channels[0].write_count(value, now)
            self.update(now)
        else:
            self.channels[offset].write_count(value, now)

    def _control(self, value: int, now: int) -> None:
        select = value >> CW_SELECT_SHIFT
        if select == CW_READ_BACK:
            for number, channel in enumerate(self.channels):
                if value & (RB_CHANNEL_0 << number):
                    if not value & RB_NO_STATUS:
                        channel.latch_status(now)
                    if not value & RB_NO_COUNT:
                        channel.latch_count(now)
            return
        channel = self.channels[select]
        if (value >> CW_ACCESS_SHIFT) & 3 == ACCESS_LATCH:
            channel.latch_count(now)
        elif select == 0:
            self.update(now)
            channel.program(value)
            self.update(now)
        else:
            channel.program(value)

    # --- host side ---------------------------------------------------------------------------
    def update(self, now=None) -> bool:
        """Bring the IRQ 0 line up to date at host time `now` (default: the clock). Returns
        whether a new rising edge was sent; several elapsed periods make one edge."""
        if now is None:
            now = self._now()
        channel = self.channels[0]
        edges = channel.edge_index(now) - channel.edges_seen
        if edges > 0:
            channel.edges_seen += edges
            self.lost_ticks += edges - 1
        if channel.mode in (2, 3, 4, 5):
            level = True                # held high; each edge is sent as a pulse (see the top)
        else:
            level = channel.out(now)
        if edges > 0 and self._line:
            self._set_line(False)
        self._set_line(level)
        return edges > 0

    def next_deadline_ns(self):
        """When channel 0's next rising edge is due (host ns), or None if none will come.
        A time in the past means `update()` has an edge to deliver now."""
        return self.channels[0].next_edge_ns()

    def set_gate(self, number: int, level: bool) -> None:
        now = self._now()
        if number == 0:
            self.update(now)
        self.channels[number].set_gate(level, now)
        if number == 0:
            self.update(now)

    def output(self, number: int) -> bool:
        """The OUT pin of a channel now."""
        return self.channels[number].out(self._now())

    def _set_line(self, level: bool) -> None:
        if level != self._line:
            self._line = level
            self._irq(level)


# Port 0x61 (layout.SYSTEM_CONTROL_PORT_B), as on the PC/AT.
PORTB_TIMER2_GATE = 0x01        # R/W: channel 2's GATE
PORTB_SPEAKER_DATA = 0x02       # R/W: speaker enable (stored only: there is no speaker)
PORTB_WRITABLE = 0x0F           # bits 2-3 (parity/channel check disables) are stored too
PORTB_REFRESH = 0x10            # RO: toggles with each DRAM refresh (here: with each read)
PORTB_TIMER2_OUT = 0x20         # RO: channel 2's OUT


class SystemControlPortB:
    """Port 0x61: channel 2's gate and output, and the refresh toggle that delay loops poll.
    Bits 6-7 (NMI sources) read 0."""

    def __init__(self, pit: Pit8254):
        self._pit = pit
        self._bits = 0
        self._refresh = False

    def save_state(self) -> dict:
        from .state import pick
        return pick(self, ("_bits", "_refresh"))

    def load_state(self, state: dict) -> None:
        from .state import put
        put(self, state, ("_bits", "_refresh"))

    def read(self, offset: int, size: int) -> int:
        # Real hardware toggles every 15 us; toggling per read makes loops that wait for a
        # change of bit 4 finish at once.
        self._refresh = not self._refresh
        value = self._bits | (PORTB_REFRESH if self._refresh else 0)
        if self._pit.output(2):
            value |= PORTB_TIMER2_OUT
        return value

    def write(self, offset: int, size: int, value: int) -> None:
        self._bits = value & PORTB_WRITABLE
        self._pit.set_gate(2, bool(value & PORTB_TIMER2_GATE))
