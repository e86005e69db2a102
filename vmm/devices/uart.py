"""A 16550A UART (the PC's COM port): the guest's serial console.

Register semantics follow the National Semiconductor PC16550D datasheet; vm-superio's
serial.rs is a readable peer. What matters most for a guest:
- LSR reads THRE|TEMT when idle: output is written out at once, so the transmitter is
  always empty. (A Linux guest once took 15 s to boot on a VMM that got this wrong.)
- LSR.DR is set while received bytes wait; the host side feeds them with `feed()`.
- Interrupts (IER, IIR priorities) are modelled; `irq(level)` drives the interrupt line.
"""
import collections
import threading

# Register offsets from the base port (DLAB = LCR bit 7 selects the divisor latch).
RBR_THR_DLL = 0
IER_DLM = 1
IIR_FCR = 2
LCR = 3
MCR = 4
LSR = 5
MSR = 6
SCR = 7

IER_RDA = 0x01          # received data available
IER_THRE = 0x02         # transmitter holding register empty
IER_RLS = 0x04          # receiver line status
IER_MS = 0x08           # modem status
IER_MASK = 0x0F

IIR_NONE = 0x01         # bit 0 set: no interrupt pending
IIR_RLS = 0x06
IIR_RDA = 0x04
IIR_THRE = 0x02
IIR_MS = 0x00
IIR_FIFO_ENABLED = 0xC0

FCR_ENABLE = 0x01
FCR_CLEAR_RX = 0x02

LCR_DLAB = 0x80

MCR_DTR = 0x01
MCR_RTS = 0x02
MCR_OUT1 = 0x04
MCR_OUT2 = 0x08
MCR_LOOP = 0x10
MCR_MASK = 0x1F

LSR_DR = 0x01
LSR_OE = 0x02
LSR_BI = 0x10
LSR_THRE = 0x20
LSR_TEMT = 0x40

MSR_DCTS = 0x01
MSR_DDSR = 0x02
MSR_TERI = 0x04
MSR_DDCD = 0x08
MSR_CTS = 0x10
MSR_DSR = 0x20
MSR_RI = 0x40
MSR_DCD = 0x80
MSR_DELTAS = 0x0F
# With no modem attached, report carrier, data-set-ready and clear-to-send, as vm-superio does.
MSR_IDLE = MSR_DCD | MSR_DSR | MSR_CTS

DEFAULT_DIVISOR = 12    # 9600 baud from the 1.8432 MHz clock (a PC BIOS's default)
RX_FIFO_SIZE = 16       # beyond this the guest loses input: LSR.OE (overrun), as on hardware


class Uart16550:
    def __init__(self, output=None, irq=None):
        """`output(byte_value)` receives each byte the guest transmits; `irq(level)` drives
        the interrupt line (level: bool)."""
        self._output = output or (lambda value: None)
        self._irq = irq or (lambda level: None)
        self._rx = collections.deque()       # bytes in the receive FIFO
        self._host_input = collections.deque()   # bytes the host sent that the FIFO cannot hold yet
        self.ier = 0
        self.lcr = 0x03                      # 8 data bits, 1 stop bit, no parity
        self.mcr = MCR_OUT2
        self.lsr_errors = 0                  # OE/BI bits latched until LSR is read
        self.msr = MSR_IDLE
        self.scr = 0
        self.divisor = DEFAULT_DIVISOR
        self.fifo_enabled = False
        self._thre_pending = False           # THR-empty interrupt armed, cleared by an IIR read
        self._irq_level = False
        # Host input arrives on another thread than the vCPU's: one lock keeps the FIFO,
        # the line status and the interrupt line consistent between the two. (Its bound
        # acquire/release, not `with`: a port access is the exit hot path, and `with` costs
        # twice as much in CPython 3.11.)
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release

    # --- host side -----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Host input for the guest, from any thread; it waits in a host-side buffer while
        the 16-byte FIFO is full, as a terminal's input would."""
        with self._lock:
            self._host_input.extend(data)
            self._refill()

    def _refill(self) -> None:
        while self._host_input and len(self._rx) < RX_FIFO_SIZE:
            self._rx.append(self._host_input.popleft())
        self._update_irq()

    def pending_input(self) -> int:
        return len(self._rx) + len(self._host_input)

    # --- snapshots (devices/state.py) -------------------------------------------------------
    STATE_VERSION = 1
    _STATE_FIELDS = ("ier", "lcr", "mcr", "lsr_errors", "msr", "scr", "divisor", "fifo_enabled",
                     "_thre_pending", "_irq_level")

    def save_state(self) -> dict:
        from .state import pick
        with self._lock:
            return dict(pick(self, self._STATE_FIELDS), rx=bytes(self._rx).hex(),
                        host_input=bytes(self._host_input).hex())

    def load_state(self, state: dict) -> None:
        """Registers and FIFOs as saved; the interrupt line's level is the machine's to restore."""
        from .state import put, hex_bytes
        with self._lock:
            put(self, state, self._STATE_FIELDS)
            self._rx = collections.deque(hex_bytes(state, "rx", "uart"))
            self._host_input = collections.deque(hex_bytes(state, "host_input", "uart"))

    # --- guest side: the bus calls these -------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        self._acquire()
        try:
            return self._read(offset)
        finally:
            self._release()

    def write(self, offset: int, size: int, value: int) -> None:
        self._acquire()
        try:
            self._write(offset, value & 0xFF)
        finally:
            self._release()

    def _read(self, offset: int) -> int:
        if offset == RBR_THR_DLL:
            if self.lcr & LCR_DLAB:
                return self.divisor & 0xFF
            value = self._rx.popleft() if self._rx else 0
            self._refill()
            return value
        if offset == IER_DLM:
            return (self.divisor >> 8) & 0xFF if self.lcr & LCR_DLAB else self.ier
        if offset == IIR_FCR:
            iid = self._interrupt_id()
            if iid == IIR_THRE:
                self._thre_pending = False  # reading IIR acknowledges a THR-empty interrupt
                self._update_irq()
            return iid | (IIR_FIFO_ENABLED if self.fifo_enabled else 0)
        if offset == LCR:
            return self.lcr
        if offset == MCR:
            return self.mcr
        if offset == LSR:
            value = LSR_THRE | LSR_TEMT | self.lsr_errors | (LSR_DR if self._rx else 0)
            self.lsr_errors = 0             # error bits clear on read
            self._update_irq()
            return value
        if offset == MSR:
            value = self._modem_status()
            self.msr &= ~MSR_DELTAS          # delta bits clear on read
            self._update_irq()
            return value
        return self.scr                     # SCR

    def _write(self, offset: int, value: int) -> None:
        if offset == RBR_THR_DLL:
            if self.lcr & LCR_DLAB:
                self.divisor = (self.divisor & 0xFF00) | value
            elif self.mcr & MCR_LOOP:
                self._loop_back(value)
            else:
                self._output(value)
                self._thre_pending = True   # the byte left at once: THR is empty again
                self._update_irq()
        elif offset == IER_DLM:
            if self.lcr & LCR_DLAB:
                self.divisor = (self.divisor & 0x00FF) | (value << 8)
            else:
                # Enabling the THRE interrupt while THR is empty raises it at once (datasheet).
                if value & IER_THRE and not self.ier & IER_THRE:
                    self._thre_pending = True
                self.ier = value & IER_MASK
                self._update_irq()
        elif offset == IIR_FCR:
            self.fifo_enabled = bool(value & FCR_ENABLE)
            if value & FCR_CLEAR_RX:
                self._rx.clear()
                self._refill()
        elif offset == LCR:
            self.lcr = value
        elif offset == MCR:
            self.mcr = value & MCR_MASK
            self._update_irq()
        elif offset == SCR:
            self.scr = value
        # LSR and MSR are read-only: writes are ignored.

    # --- internals ---------------------------------------------------------------------------
    def _loop_back(self, value: int) -> None:
        """Loopback mode (MCR bit 4): the transmitter feeds the receiver."""
        if len(self._rx) < RX_FIFO_SIZE:
            self._rx.append(value)
        else:
            self.lsr_errors |= LSR_OE
        self._thre_pending = True
        self._update_irq()

    def _modem_status(self) -> int:
        if self.mcr & MCR_LOOP:
            # In loopback the modem-control outputs drive the modem-status inputs:
            # RTS->CTS, DTR->DSR, OUT1->RI, OUT2->DCD.
            mcr = self.mcr
            return ((MSR_CTS if mcr & MCR_RTS else 0) | (MSR_DSR if mcr & MCR_DTR else 0)
                    | (MSR_RI if mcr & MCR_OUT1 else 0) | (MSR_DCD if mcr & MCR_OUT2 else 0)
                    | (self.msr & MSR_DELTAS))
        return self.msr

    def _interrupt_id(self) -> int:
        """The highest-priority pending interrupt (datasheet table 4), or IIR_NONE."""
        ier = self.ier
        if ier & IER_RLS and self.lsr_errors:
            return IIR_RLS
        if ier & IER_RDA and self._rx:
            return IIR_RDA
        if ier & IER_THRE and self._thre_pending:
            return IIR_THRE
        if ier & IER_MS and self.msr & MSR_DELTAS:
            return IIR_MS
        return IIR_NONE

    def _update_irq(self) -> None:
        level = self._interrupt_id() != IIR_NONE
        if level != self._irq_level:
            self._irq_level = level
            self._irq(level)
