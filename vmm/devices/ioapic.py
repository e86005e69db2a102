"""An I/O APIC (Intel 82093AA datasheet; the version-0x20 EOI register as QEMU and Linux know
it), for the software engine; KVM has its own in the kernel.

Registers through IOREGSEL (offset 0x00) and IOWIN (0x10): ID, version (with the number of
redirection entries), arbitration, and a 64-bit redirection entry per pin: vector, delivery
mode, destination mode, delivery status, polarity, remote IRR, trigger mode, mask,
destination. Offset 0x40 is the EOI register (a directed EOI by vector).

Pins take the asserted level a device drives (`set_irq(pin, level)`, as KVM_IRQ_LINE does;
polarity describes the wire, which is not modelled). Edge pins deliver on a rising edge while
unmasked; an edge while masked is lost. Level pins deliver while asserted and unmasked, set
remote IRR, and deliver again after the EOI if still asserted. Delivery goes to the one local
APIC, through `deliver(vector, level)`; ExtINT, NMI, SMI and INIT entries are not delivered.
"""
IOREGSEL, IOWIN, EOI = 0x00, 0x10, 0x40
REG_ID, REG_VERSION, REG_ARBITRATION = 0x00, 0x01, 0x02
REG_REDIRECTION = 0x10                 # two registers per pin: low, then high dword
VERSION = 0x20

VECTOR = 0xFF
DELIVERY_MODE = 0x700
DELIVERY_FIXED, DELIVERY_LOWEST = 0x000, 0x100
DELIVERY_STATUS = 1 << 12
REMOTE_IRR = 1 << 14
LEVEL_TRIGGERED = 1 << 15
MASKED = 1 << 16
WRITABLE = 0xFFFF_FFFF & ~(DELIVERY_STATUS | REMOTE_IRR)
RESET_ENTRY = MASKED


class IoApic:
    def __init__(self, deliver, pins: int = 24, apic_id: int = 0):
        """deliver(vector, level): an interrupt message to the local APIC."""
        self._deliver = deliver
        self.pins = pins
        self.apic_id = apic_id
        self.select = 0
        self.entries = [RESET_ENTRY] * pins    # 64-bit redirection entries
        self.levels = [False] * pins           # what the devices drive now

    # --- snapshots (devices/state.py) --------------------------------------------------------
    STATE_VERSION = 1
    _STATE_FIELDS = ("apic_id", "select", "entries", "levels")

    def save_state(self) -> dict:
        from .state import pick
        return pick(self, self._STATE_FIELDS)

    def load_state(self, state: dict) -> None:
        from .state import StateError, put
        pins = self.pins
        put(self, state, self._STATE_FIELDS)
        if len(self.entries) != pins or len(self.levels) != pins or not all(
                isinstance(e, int) and 0 <= e < 1 << 64 for e in self.entries):
            raise StateError(f"IOAPIC: {pins} redirection entries and line levels expected")
        self.levels = [bool(level) for level in self.levels]

    # --- the interrupt lines ----------------------------------------------------------------
    def set_irq(self, pin: int, level: bool) -> None:
        if not 0 <= pin < self.pins:
            return
        was = self.levels[pin]
        self.levels[pin] = level
        entry = self.entries[pin]
        if entry & LEVEL_TRIGGERED:
            if level:
                self._service(pin)
        elif level and not was:
            self._service(pin)

    def end_of_interrupt(self, vector: int) -> None:
        """The local APIC's EOI broadcast (or a write to our EOI register): remote IRR
        clears on the level entries with this vector; a line still asserted delivers again."""
        for pin, entry in enumerate(self.entries):
            if entry & VECTOR == vector and entry & LEVEL_TRIGGERED and entry & REMOTE_IRR:
                self.entries[pin] = entry & ~REMOTE_IRR
                if self.levels[pin]:
                    self._service(pin)

    def _service(self, pin: int) -> None:
        entry = self.entries[pin]
        if entry & MASKED:
            return
        level = bool(entry & LEVEL_TRIGGERED)
        if level and entry & REMOTE_IRR:
            return                             # the last one is not yet acknowledged
        if entry & DELIVERY_MODE not in (DELIVERY_FIXED, DELIVERY_LOWEST):
            return
        if level:
            self.entries[pin] = entry | REMOTE_IRR
        self._deliver(entry & VECTOR, level)

    # --- the MMIO window ----------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset == IOREGSEL:
            return self.select
        if offset != IOWIN:
            return 0
        register = self.select
        if register == REG_ID:
            return self.apic_id << 24
        if register == REG_VERSION:
            return VERSION | (self.pins - 1) << 16
        if register == REG_ARBITRATION:
            return self.apic_id << 24
        pin, high = self._entry_of(register)
        if pin is None:
            return 0xFFFF_FFFF
        entry = self.entries[pin]
        return entry >> 32 if high else entry & 0xFFFF_FFFF

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == IOREGSEL:
            self.select = value & 0xFF
            return
        if offset == EOI:
            self.end_of_interrupt(value & VECTOR)
            return
        if offset != IOWIN:
            return
        register = self.select
        if register == REG_ID:
            self.apic_id = value >> 24 & 0xF
            return
        pin, high = self._entry_of(register)
        if pin is None:
            return
        entry = self.entries[pin]
        if high:
            entry = (entry & 0xFFFF_FFFF) | (value & 0xFF00_0000) << 32
        else:
            entry = (entry & ~WRITABLE & 0xFFFF_FFFF_FFFF_FFFF) | (value & WRITABLE) | (entry & 0xFFFF_FFFF_0000_0000)
            if not entry & LEVEL_TRIGGERED:
                entry &= ~REMOTE_IRR
        self.entries[pin] = entry
        if not entry & MASKED and entry & LEVEL_TRIGGERED and self.levels[pin]:
            self._service(pin)                 # unmasked while asserted: deliver now

    def _entry_of(self, register: int):
        index = register - REG_REDIRECTION
        if index < 0 or index >= 2 * self.pins:
            return None, False
        return index // 2, bool(index & 1)
