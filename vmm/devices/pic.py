"""The PC's cascaded pair of Intel 8259A programmable interrupt controllers.

Only the software (unicorn) engine uses this model: on KVM the in-kernel irqchip plays
this part. Register semantics follow the Intel 8259A datasheet; QEMU hw/intc/i8259.c and
Bochs iodev/pic.cc are readable peers. What is modelled, per chip:
- ICW1-ICW4 initialization (edge/level LTIM, single/cascade, vector base, slave mask or id,
  AEOI, special fully nested mode); OCW1 (IMR), OCW2 (non-specific/specific EOI, rotate on
  EOI, rotate in AEOI, set priority), OCW3 (IRR/ISR read select, poll, special mask mode).
- Interrupt inputs: an edge latches IRR on the rising edge; a level input's IRR follows
  the line. In both modes a line that falls before the acknowledge withdraws its request
  (datasheet: "the IR input must remain high until after the falling edge of the first
  INTA"; Bochs does the same; QEMU and KVM keep an edge latched instead).
- The INT output, as on the chip, is raised when a request wins the priority resolution
  and stays raised until the INTA cycle, even if the request is withdrawn or masked in the
  meantime: the acknowledge then yields the spurious vector, IR7 of that chip (the master's
  IR7, or the slave's IR7 with master IR2 left in service). Guests must handle both, as
  Linux does. The master's INT is the CPU's INTR line: `DualPic.pending()`.
Not modelled: MCS-80/85 mode (the vector is always base + IR), buffered mode, the PC's
ELCR registers at 0x4D0 (the trigger mode is per chip, from ICW1).
"""
from .. import layout

# Port offsets from each chip's base.
COMMAND = 0             # ICW1, OCW2, OCW3 written; IRR, ISR or the poll byte read
DATA = 1                # ICW2-ICW4 during initialization, then OCW1 (IMR)

ICW1_IC4 = 0x01         # ICW4 will follow
ICW1_SNGL = 0x02        # single chip: no ICW3
ICW1_LTIM = 0x08        # level-triggered inputs
ICW1_INIT = 0x10        # written to COMMAND, this bit marks ICW1
ICW4_8086 = 0x01        # 8086 mode (the vector is base + IR); the 8080 mode is not modelled
ICW4_AEOI = 0x02        # automatic EOI: the acknowledge does not set ISR
ICW4_SFNM = 0x10        # special fully nested mode
ICW2_VECTOR_MASK = 0xF8  # in 8086 mode T7-T3 give the vector; the low 3 bits are the IR

OCW3_ID = 0x08          # with bit 4 clear, bit 3 tells OCW3 from OCW2
OCW3_RIS = 0x01         # with RR: read ISR rather than IRR
OCW3_RR = 0x02          # change the read-register selection
OCW3_POLL = 0x04        # treat the next read as an interrupt acknowledge
OCW3_SMM = 0x20         # with ESMM: set (1) or reset (0) the special mask mode
OCW3_ESMM = 0x40

# OCW2 commands: bits 7-5 (R, SL, EOI); bits 2-0 give the level where SL is set.
OCW2_ROTATE_AEOI_CLEAR = 0
OCW2_EOI = 1
OCW2_NOP = 2
OCW2_SPECIFIC_EOI = 3
OCW2_ROTATE_AEOI_SET = 4
OCW2_ROTATE_EOI = 5
OCW2_SET_PRIORITY = 6
OCW2_ROTATE_SPECIFIC_EOI = 7

POLL_INTERRUPT = 0x80   # poll byte: I bit (a request was pending), with its IR in bits 2-0
SPURIOUS_IR = 7         # the IR whose vector a chip supplies when the request has vanished

# Where ICW2-ICW4 are in the initialization sequence.
_READY, _ICW2, _ICW3, _ICW4 = range(4)


class Pic8259:
    """One 8259A. `output(level)` drives its INT pin (the CPU's INTR, or master IR2)."""

    def __init__(self, is_master: bool, output=None):
        self.is_master = is_master
        self._output = output or (lambda level: None)
        self.lines = 0                  # input levels as last set, one bit per IR
        self.irr = 0
        self.isr = 0
        self.imr = 0                    # KVM and QEMU start unmasked too (datasheet: undefined)
        self.vector_base = 0
        self.level_mask = 0             # IRs that are level-triggered (ICW1 LTIM: all or none)
        self.highest = 0                # the IR of highest priority (rotation moves it)
        self.auto_eoi = False
        self.rotate_in_aeoi = False
        self.special_mask = False
        self.special_fully_nested = False
        self.read_isr = False
        self.poll = False
        self.single = False
        # ICW3: the master's mask of IRs with a slave, or a slave's id. The PC's wiring until
        # the guest says otherwise.
        self.icw3 = 1 << layout.PIC_CASCADE_IRQ if is_master else layout.PIC_CASCADE_IRQ
        self.int_out = False
        self._icw4_needed = False
        self._init_step = _READY

    # --- snapshots (devices/state.py; engines/kvm_platform.py maps KVM's 8259A to these) -------
    STATE_FIELDS = ("lines", "irr", "isr", "imr", "vector_base", "level_mask", "highest", "auto_eoi",
                    "rotate_in_aeoi", "special_mask", "special_fully_nested", "read_isr", "poll", "single",
                    "icw3", "int_out", "_icw4_needed", "_init_step")

    def save_state(self) -> dict:
        from .state import pick
        return pick(self, self.STATE_FIELDS)

    def load_state(self, state: dict) -> None:
        """The registers as saved; INT is not driven (the pair re-derives the CPU's INTR)."""
        from .state import StateError, put
        put(self, state, self.STATE_FIELDS)
        if not 0 <= self._init_step <= _ICW4 or not 0 <= self.highest < 8:
            raise StateError("8259A: initialization step or priority out of range")

    # --- guest side: the bus calls these -------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if self.poll:
            self.poll = False           # the poll byte is read once; the read is an INTA
            ir = self.intack()
            return POLL_INTERRUPT | ir if ir is not None else 0
        if offset == COMMAND:
            return self.isr if self.read_isr else self.irr
        return self.imr

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == COMMAND:
            if value & ICW1_INIT:
                self._icw1(value)
            elif value & OCW3_ID:
                self._ocw3(value)
            else:
                self._ocw2(value >> 5, value & 7)
        elif self._init_step == _READY:
            self.imr = value            # OCW1
        elif self._init_step == _ICW2:
            self.vector_base = value & ICW2_VECTOR_MASK
            self._init_step = _ICW3 if not self.single else self._after_icw3()
        elif self._init_step == _ICW3:
            self.icw3 = value
            self._init_step = self._after_icw3()
        else:
            self.auto_eoi = bool(value & ICW4_AEOI)
            self.special_fully_nested = bool(value & ICW4_SFNM)
            self._init_step = _READY
        self._evaluate()

    def _icw1(self, value: int) -> None:
        """ICW1 restarts initialization and resets the chip to the datasheet's defaults."""
        self._init_step = _ICW2
        self._icw4_needed = bool(value & ICW1_IC4)
        self.single = bool(value & ICW1_SNGL)
        self.level_mask = 0xFF if value & ICW1_LTIM else 0
        # The edge-sense circuit is reset: a line already high must fall and rise again.
        self.irr = self.lines & self.level_mask
        self.isr = 0
        self.imr = 0
        self.highest = 0                # IR7 lowest
        self.special_mask = False
        self.read_isr = False
        self.poll = False
        self.rotate_in_aeoi = False
        if not self._icw4_needed:       # the ICW4 functions are then all zero
            self.auto_eoi = False
            self.special_fully_nested = False
        self._lower_int()

    def _after_icw3(self) -> int:
        return _ICW4 if self._icw4_needed else _READY

    def _ocw2(self, command: int, level: int) -> None:
        if command in (OCW2_EOI, OCW2_ROTATE_EOI):
            # The highest-priority IR in service ends. In special mask mode an ISR bit masked
            # by IMR is not cleared by a non-specific EOI (datasheet).
            ir = self._highest_in(self.isr & ~self.imr if self.special_mask else self.isr)
            if ir is not None:
                self.isr &= ~(1 << ir)
                if command == OCW2_ROTATE_EOI:
                    self.highest = (ir + 1) & 7     # the IR just served becomes lowest
        elif command in (OCW2_SPECIFIC_EOI, OCW2_ROTATE_SPECIFIC_EOI):
            self.isr &= ~(1 << level)
            if command == OCW2_ROTATE_SPECIFIC_EOI:
                self.highest = (level + 1) & 7
        elif command == OCW2_SET_PRIORITY:
            self.highest = (level + 1) & 7          # `level` becomes the lowest priority
        elif command in (OCW2_ROTATE_AEOI_SET, OCW2_ROTATE_AEOI_CLEAR):
            self.rotate_in_aeoi = command == OCW2_ROTATE_AEOI_SET
        # OCW2_NOP: nothing.

    def _ocw3(self, value: int) -> None:
        if value & OCW3_ESMM:
            self.special_mask = bool(value & OCW3_SMM)
        if value & OCW3_RR:
            self.read_isr = bool(value & OCW3_RIS)
        if value & OCW3_POLL:
            self.poll = True

    # --- the interrupt side ----------------------------------------------------------------
    def set_input(self, ir: int, level: bool) -> None:
        """Drive input IR0-7. A rising edge (or a high level, in level mode) requests."""
        bit = 1 << ir
        if level:
            if not self.lines & bit or self.level_mask & bit:
                self.irr |= bit
            self.lines |= bit
        else:
            self.lines &= ~bit
            self.irr &= ~bit            # a request that falls before INTA is withdrawn
        self._evaluate()

    def resolve(self):
        """The IR that would be acknowledged now, or None: the highest-priority unmasked
        request that no in-service IR of equal or higher priority blocks."""
        requests = self.irr & ~self.imr
        if self.special_mask:
            # Special mask mode: every unmasked level not itself in service may interrupt,
            # lower as well as higher ones (datasheet; Bochs does the same).
            return self._highest_in(requests & ~self.isr)
        ir = self._highest_in(requests)
        if ir is None:
            return None
        in_service = self.isr
        if self.special_fully_nested and self.is_master:
            in_service &= ~self.icw3    # a slave in service does not block its own master IR
        blocker = self._highest_in(in_service)
        if blocker is not None and self._rank(blocker) <= self._rank(ir):
            return None
        return ir

    def intack(self):
        """The chip's part of an INTA cycle (or a poll read): returns the acknowledged IR,
        or None when the request has vanished (the chip then supplies IR7's vector)."""
        ir = self.resolve()
        if ir is not None:
            bit = 1 << ir
            if not self.level_mask & bit:
                self.irr &= ~bit        # an edge request is consumed; a level one persists
            if not self.auto_eoi:
                self.isr |= bit
            elif self.rotate_in_aeoi:
                self.highest = (ir + 1) & 7
        self._lower_int()
        self._evaluate()
        return ir

    def cascades(self, ir: int) -> bool:
        """Whether the master passes an acknowledge of `ir` on to a slave (ICW3)."""
        return self.is_master and not self.single and bool(self.icw3 >> ir & 1)

    # --- internals ---------------------------------------------------------------------------
    def _rank(self, ir: int) -> int:
        return (ir - self.highest) & 7  # 0 is the highest priority

    def _highest_in(self, mask: int):
        for i in range(8):
            ir = (self.highest + i) & 7
            if mask >> ir & 1:
                return ir
        return None

    def _evaluate(self) -> None:
        """Raise INT when a request wins. It is lowered only by INTA or ICW1 (see the top)."""
        if not self.int_out and self._init_step == _READY and self.resolve() is not None:
            self.int_out = True
            self._output(True)

    def _lower_int(self) -> None:
        if self.int_out:
            self.int_out = False
            self._output(False)


class DualPic:
    """The PC/AT pair: the slave's INT drives master IR2 (layout.PIC_CASCADE_IRQ).

    Register `master` at layout.PIC_MASTER_PORT and `slave` at layout.PIC_SLAVE_PORT
    (layout.PIC_PORT_COUNT ports each). Devices call `set_irq(line, level)`; the engine asks
    `pending()` (the INTR line) and, when it can take an interrupt, `acknowledge()` for the
    vector. `on_intr(level)`, if given, is told each time INTR changes.
    """

    def __init__(self, on_intr=None):
        self._on_intr = on_intr or (lambda level: None)
        self.master = Pic8259(is_master=True, output=self._master_int)
        self.slave = Pic8259(is_master=False, output=self._slave_int)

    def _master_int(self, level: bool) -> None:
        self._on_intr(level)

    def _slave_int(self, level: bool) -> None:
        self.master.set_input(layout.PIC_CASCADE_IRQ, level)

    def set_irq(self, line: int, level: bool) -> None:
        """Drive ISA IRQ `line` (0-15; 2 is the cascade and cannot be driven)."""
        if line < 8 and line != layout.PIC_CASCADE_IRQ:
            self.master.set_input(line, level)
        elif 8 <= line < 16:
            self.slave.set_input(line - 8, level)
        else:
            raise ValueError(f"IRQ {line} cannot be driven: 0-15, but not the cascade"
                             f" input {layout.PIC_CASCADE_IRQ}")

    def pending(self) -> bool:
        """The CPU's INTR line: the master's INT output."""
        return self.master.int_out

    def acknowledge(self) -> int:
        """The INTA cycle: the vector the CPU takes. Moves the winning IRR bit to ISR (unless
        AEOI) on the master and, for a cascaded IR, on the slave. If the request vanished
        since INTR was raised, the vector is the spurious one: master IR7, or slave IR7 with
        master IR2 left in service (so the guest must still EOI the master)."""
        master = self.master
        ir = master.intack()
        if ir is None:
            return master.vector_base + SPURIOUS_IR
        if not master.cascades(ir):
            return master.vector_base + ir
        slave = self.slave
        slave_ir = slave.intack()
        return slave.vector_base + (SPURIOUS_IR if slave_ir is None else slave_ir)
