"""virtio-console (virtio 1.2 section 5.3) with one port and no MULTIPORT: queue 0 is the
port's receiveq (host to guest), queue 1 its transmitq (guest to host).

Host input arrives through feed() at any time, from any thread. It waits in a buffer until
the driver posts receive buffers; each arrival or new receive buffer moves as much as fits.
Output goes to `output(bytes)` a whole buffer at a time.

VIRTIO_CONSOLE_F_EMERG_WRITE is offered: a driver may write a byte to the emerg_wr config
field before its queues are up (early debugging output).
"""
import collections
import struct

from .device import DEVICE_ID_CONSOLE, VirtioDevice

RECEIVEQ = 0
TRANSMITQ = 1
QUEUE_SIZE = 256

VIRTIO_CONSOLE_F_EMERG_WRITE = 1 << 2

# struct virtio_console_config (5.3.4): cols, rows (only with F_SIZE), max_nr_ports (only
# with F_MULTIPORT), emerg_wr.
CONFIG = struct.Struct("<HHII")
EMERG_WR_OFFSET = 8


class VirtioConsole(VirtioDevice):
    device_id = DEVICE_ID_CONSOLE
    queue_max_sizes = (QUEUE_SIZE, QUEUE_SIZE)

    def __init__(self, output=None):
        super().__init__(VIRTIO_CONSOLE_F_EMERG_WRITE, CONFIG.pack(0, 0, 1, 0))
        self._output = output or (lambda data: None)
        # Host input: a queue of memoryviews, so taking part of a chunk copies nothing.
        self._pending = collections.deque()
        self._pending_bytes = 0

    # --- host side -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Host input for the guest; kept until the driver has buffers for it."""
        if not data:
            return
        if self.transport is None:
            self._append(data)
            return
        with self.transport.lock:
            self._append(data)
        self.transport.kick(RECEIVEQ)

    def pending_input(self) -> int:
        return self._pending_bytes

    def _append(self, data: bytes) -> None:
        self._pending.append(memoryview(bytes(data)))
        self._pending_bytes += len(data)

    def save_state(self) -> dict:
        return {"pending": b"".join(self._pending).hex()}

    def load_state(self, state: dict) -> None:
        """Host input that had not reached the driver yet."""
        from ..state import hex_bytes
        pending = hex_bytes(state, "pending", "virtio-console")
        self._pending.clear()
        self._pending_bytes = 0
        if pending:
            self._append(pending)

    # --- the transport calls these -------------------------------------------------------------
    def activate(self) -> None:
        self.process(RECEIVEQ)          # input that came before the driver was ready

    def process(self, index: int) -> None:
        if index == TRANSMITQ:
            self.serve(TRANSMITQ, self._transmit)
        elif index == RECEIVEQ and self._pending and self.transport.queues[RECEIVEQ].ready:
            self._receive()

    def write_config(self, offset: int, size: int, value: int) -> None:
        if offset == EMERG_WR_OFFSET:
            self._output(bytes((value & 0xFF,)))

    # --- internals -----------------------------------------------------------------------------
    def _transmit(self, chain) -> int:
        if chain.error is None:
            data = b"".join(self.memory.read(gpa, n) for gpa, n in chain.readable)
            if data:
                self._output(data)
        return 0                        # nothing written into the driver's buffers

    def _receive(self) -> None:
        queue = self.transport.queues[RECEIVEQ]
        try:
            while self._pending:
                chain = queue.pop()
                if chain is None:
                    break               # no buffers: the rest waits for the next notify
                queue.add_used(chain.head, 0 if chain.error else self._fill(chain))
        finally:
            self.transport.signal_used(queue)

    def _fill(self, chain) -> int:
        written = 0
        for gpa, length in chain.writable:
            while length and self._pending:
                chunk = self._pending[0]
                n = min(length, len(chunk))
                self.memory.write(gpa, chunk[:n])
                if n == len(chunk):
                    self._pending.popleft()
                else:
                    self._pending[0] = chunk[n:]
                self._pending_bytes -= n
                gpa += n
                length -= n
                written += n
            if not self._pending:
                break
        return written
