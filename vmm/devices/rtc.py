"""The MC146818 CMOS real-time clock of the PC (ports 0x70/0x71): the host's wall-clock time
in the format the guest selects (BCD or binary, 12- or 24-hour, register B), register A's
update-in-progress bit (never set: our clock updates atomically), register D's valid-RAM bit,
the century byte at 0x32 (as ACPI's FADT.century and Linux's default assume), and the rest of
the 128 bytes as NVRAM. A guest that sets the time (register B's SET bit, then the fields)
moves its clock by the difference, without touching the host's.

Not modelled: the periodic, alarm and update interrupts (register C always reads 0), which
Linux uses only when a program asks /dev/rtc for them. Source: the Motorola MC146818A
datasheet; QEMU hw/rtc/mc146818rtc.c is a readable peer.
"""
import time

INDEX, DATA = 0, 1
NMI_DISABLE = 0x80                     # bit 7 of the index port
REG_SECONDS, REG_MINUTES, REG_HOURS = 0x00, 0x02, 0x04
REG_WEEKDAY, REG_DAY, REG_MONTH, REG_YEAR = 0x06, 0x07, 0x08, 0x09
REG_A, REG_B, REG_C, REG_D = 0x0A, 0x0B, 0x0C, 0x0D
REG_CENTURY = 0x32
B_SET = 1 << 7
B_BINARY = 1 << 2                      # DM: 1 = binary, 0 = BCD
B_24_HOUR = 1 << 1
D_VALID_RAM = 1 << 7
HOUR_PM = 1 << 7                       # in 12-hour mode
REG_A_DEFAULT = 0x26                   # 32.768 kHz time base, 1024 Hz rate (what firmware leaves)
REG_B_DEFAULT = B_24_HOUR
TIME_FIELDS = (REG_SECONDS, REG_MINUTES, REG_HOURS, REG_WEEKDAY, REG_DAY, REG_MONTH, REG_YEAR, REG_CENTURY)


def to_bcd(value: int) -> int:
    return (value // 10) << 4 | value % 10


def from_bcd(value: int) -> int:
    return (value >> 4) * 10 + (value & 0xF)


class CmosRtc:
    def __init__(self, now=time.time):
        self._now = now
        self._offset = 0.0                 # guest time minus host time, in seconds
        self._index = 0
        self._ram = bytearray(128)
        self._ram[REG_A] = REG_A_DEFAULT
        self._ram[REG_B] = REG_B_DEFAULT
        self._ram[REG_D] = D_VALID_RAM
        self._frozen = None                # the fields while SET is on: {register: value}

    # --- snapshots (devices/state.py) ------------------------------------------------------
    STATE_VERSION = 1

    def save_state(self) -> dict:
        frozen = None if self._frozen is None else sorted(self._frozen.items())
        return {"offset": self._offset, "index": self._index, "ram": bytes(self._ram).hex(), "frozen": frozen}

    def load_state(self, state: dict) -> None:
        from .state import StateError, put, hex_bytes
        put(self, state, ("_offset", "_index"))
        ram = hex_bytes(state, "ram", "rtc")
        frozen = state.get("frozen")
        if len(ram) != len(self._ram) or not 0 <= self._index < len(ram):
            raise StateError("rtc: the CMOS RAM or its index has the wrong size")
        try:
            self._frozen = None if frozen is None else {int(r): int(v) for r, v in frozen}
        except (TypeError, ValueError):
            raise StateError("rtc: the frozen time fields are not [register, value] pairs") from None
        self._ram[:] = ram

    # --- ports ------------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == INDEX:
            return 0xFF                    # write-only on a PC
        register = self._index
        if register in TIME_FIELDS:
            if self._frozen is not None:
                return self._frozen[register]
            return self._encode_fields()[register]
        if register in (REG_A, REG_C):
            return self._ram[register] & 0x7F if register == REG_A else 0   # UIP never set; no flags
        return self._ram[register]

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == INDEX:
            self._index = value & ~NMI_DISABLE & 0x7F
            return
        register = self._index
        if register in TIME_FIELDS:
            if self._frozen is None:
                self._frozen = self._encode_fields()
            self._frozen[register] = value
            if not self._ram[REG_B] & B_SET:
                self._set_time(self._frozen)
        elif register == REG_B:
            if value & B_SET and self._frozen is None:
                self._frozen = self._encode_fields()
            elif not value & B_SET and self._frozen is not None:
                self._ram[REG_B] = value
                self._set_time(self._frozen)
            self._ram[REG_B] = value
        elif register in (REG_C, REG_D):
            return                         # read-only
        else:
            self._ram[register] = value

    # --- the clock ---------------------------------------------------------------------
    def guest_time(self) -> time.struct_time:
        return time.gmtime(self._now() + self._offset)

    def _encode_fields(self) -> dict:
        t = self.guest_time()
        b = self._ram[REG_B]
        encode = (lambda v: v) if b & B_BINARY else to_bcd
        hour = t.tm_hour
        if not b & B_24_HOUR:
            pm = hour >= 12
            hour = encode(hour % 12 or 12) | (HOUR_PM if pm else 0)
        else:
            hour = encode(hour)
        return {REG_SECONDS: encode(t.tm_sec), REG_MINUTES: encode(t.tm_min), REG_HOURS: hour,
                REG_WEEKDAY: encode(t.tm_wday + 2 if t.tm_wday < 6 else 1),   # 1 = Sunday
                REG_DAY: encode(t.tm_mday), REG_MONTH: encode(t.tm_mon),
                REG_YEAR: encode(t.tm_year % 100), REG_CENTURY: encode(t.tm_year // 100)}

    def _set_time(self, fields: dict) -> None:
        import calendar                        # (here: it costs every VM's start-up milliseconds)
        b = self._ram[REG_B]
        decode = (lambda v: v) if b & B_BINARY else from_bcd
        hour_field = fields[REG_HOURS]
        if b & B_24_HOUR:
            hour = decode(hour_field)
        else:
            hour = decode(hour_field & ~HOUR_PM) % 12 + (12 if hour_field & HOUR_PM else 0)
        year = decode(fields[REG_CENTURY]) * 100 + decode(fields[REG_YEAR])
        try:
            wanted = calendar.timegm((year, decode(fields[REG_MONTH]), decode(fields[REG_DAY]), hour,
                                      decode(fields[REG_MINUTES]), decode(fields[REG_SECONDS])))
            time.gmtime(wanted)                # a date the clock can show again
        except (OverflowError, ValueError, OSError):
            self._frozen = None                # a nonsensical date: keep the old time
            return
        self._offset = wanted - self._now()
        self._frozen = None
