"""A test-side virtio driver: it lays out split rings in a GuestMemory and drives an
MmioTransport through its registers exactly as a guest would (reset, feature negotiation,
queue setup, DRIVER_OK, notify, used ring, InterruptStatus/InterruptACK).

The other test_virtio_*.py modules import it (`from test_virtio_driver import Driver`); the
tests at the bottom check the helper itself.
"""
import struct

from vmm.devices.virtio import mmio as m
from vmm.devices.virtio.device import VirtioDevice
from vmm.devices.virtio.queue import DESC, DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE
from vmm.memory import GuestMemory

MEM_SIZE = 1 << 20
RING_AREA = 0x1000          # rings are bump-allocated from here...
HEAP_START = 0x40000        # ...and buffers from here (or mid-RAM if smaller) to the end, wrapping
U16 = struct.Struct("<H")
USED_ELEM = struct.Struct("<II")


class Driver:
    def __init__(self, device, memory=None, mem_size=MEM_SIZE):
        self.memory = memory if memory is not None else GuestMemory(mem_size)
        self.irqs = []
        self.device = device
        self.transport = m.MmioTransport(device, self.memory, irq=self.irqs.append)
        self.queues = []
        self.heap_start = min(HEAP_START, self.memory.size // 2)
        self._ring_next = RING_AREA
        self._heap_next = self.heap_start
        self.features = 0

    # --- registers ---------------------------------------------------------------------------
    def read(self, offset: int) -> int:
        return self.transport.read(offset, 4)

    def write(self, offset: int, value: int) -> None:
        self.transport.write(offset, 4, value)

    @property
    def status(self) -> int:
        return self.read(m.STATUS)

    @property
    def irq_level(self) -> bool:
        return bool(self.irqs) and self.irqs[-1]

    def device_features(self) -> int:
        self.write(m.DEVICE_FEATURES_SEL, 0)
        low = self.read(m.DEVICE_FEATURES)
        self.write(m.DEVICE_FEATURES_SEL, 1)
        return low | self.read(m.DEVICE_FEATURES) << 32

    def set_driver_features(self, features: int) -> None:
        self.write(m.DRIVER_FEATURES_SEL, 0)
        self.write(m.DRIVER_FEATURES, features & 0xFFFF_FFFF)
        self.write(m.DRIVER_FEATURES_SEL, 1)
        self.write(m.DRIVER_FEATURES, features >> 32)

    def negotiate(self, drop: int = 0, extra: int = 0) -> bool:
        """Reset, ACKNOWLEDGE, DRIVER, accept the offered features (minus `drop`, plus
        `extra`), FEATURES_OK; True if the device kept FEATURES_OK."""
        self.write(m.STATUS, 0)
        self.queues = []
        self._ring_next = RING_AREA
        self.write(m.STATUS, m.ACKNOWLEDGE)
        self.write(m.STATUS, m.ACKNOWLEDGE | m.DRIVER)
        self.features = (self.device_features() & ~drop) | extra
        self.set_driver_features(self.features)
        self.write(m.STATUS, m.ACKNOWLEDGE | m.DRIVER | m.FEATURES_OK)
        return bool(self.status & m.FEATURES_OK)

    def driver_ok(self) -> None:
        self.write(m.STATUS, self.status | m.DRIVER_OK)

    def start(self, drop: int = 0, size=None):
        """The whole initialisation: features, every queue, DRIVER_OK. Returns self."""
        assert self.negotiate(drop)
        for index in range(len(self.device.queue_max_sizes)):
            self.setup_queue(index, size)
        self.driver_ok()
        assert self.status & m.DRIVER_OK
        return self

    def ack(self) -> int:
        """What an interrupt handler does: read InterruptStatus, acknowledge it."""
        status = self.read(m.INTERRUPT_STATUS)
        self.write(m.INTERRUPT_ACK, status)
        return status

    # --- memory --------------------------------------------------------------------------------
    def ring_alloc(self, size: int, align: int = 4096) -> int:
        addr = (self._ring_next + align - 1) & ~(align - 1)
        self._ring_next = addr + size
        assert self._ring_next <= self.heap_start
        return addr

    def alloc(self, size: int, align: int = 16) -> int:
        addr = (self._heap_next + align - 1) & ~(align - 1)
        if addr + size > self.memory.size:
            addr = self.heap_start
        self._heap_next = addr + size
        return addr

    def put(self, data: bytes) -> int:
        addr = self.alloc(len(data))
        self.memory.write(addr, data)
        return addr

    def setup_queue(self, index: int, size=None, desc=None, avail=None, used=None) -> "DriverQueue":
        """Select queue `index`, program its size (default QueueNumMax) and ring addresses
        (default: freshly allocated), set QueueReady."""
        self.write(m.QUEUE_SEL, index)
        assert self.read(m.QUEUE_READY) == 0
        if size is None:
            size = self.read(m.QUEUE_NUM_MAX)
        queue = DriverQueue(self, index, size, desc, avail, used)
        self.queues.append(queue)
        return queue


class DriverQueue:
    def __init__(self, driver, index, size, desc=None, avail=None, used=None):
        self.driver = driver
        self.memory = driver.memory
        self.index = index
        self.size = size
        self.desc = driver.ring_alloc(16 * size) if desc is None else desc
        self.avail = driver.ring_alloc(6 + 2 * size) if avail is None else avail
        self.used = driver.ring_alloc(6 + 8 * size) if used is None else used
        self.avail_idx = 0
        self.last_used = 0
        self.free = list(range(size))
        self.chains = {}            # head -> descriptor indices to free when it comes back
        write = driver.write
        write(m.QUEUE_SEL, index)
        write(m.QUEUE_NUM, size)
        for low, high, addr in ((m.QUEUE_DESC_LOW, m.QUEUE_DESC_HIGH, self.desc),
                                (m.QUEUE_DRIVER_LOW, m.QUEUE_DRIVER_HIGH, self.avail),
                                (m.QUEUE_DEVICE_LOW, m.QUEUE_DEVICE_HIGH, self.used)):
            write(low, addr & 0xFFFF_FFFF)
            write(high, addr >> 32)
        write(m.QUEUE_READY, 1)

    # --- building chains -----------------------------------------------------------------------
    def write_desc(self, index: int, addr: int, length: int, flags: int = 0, nxt: int = 0, table=None) -> None:
        base = self.desc if table is None else table
        self.memory.write(base + 16 * index, DESC.pack(addr, length, flags, nxt))

    def add(self, out=(), in_=(), indirect=False) -> tuple:
        """Post one request: `out` device-readable byte strings, `in_` lengths of
        device-writable buffers. Returns (head, [(gpa, length)] of the writable buffers)."""
        buffers = [(self.driver.put(data), len(data), 0) for data in out]
        writable = [(self.driver.alloc(n), n) for n in in_]
        buffers += [(gpa, n, DESC_F_WRITE) for gpa, n in writable]
        if indirect:
            table = self.driver.alloc(16 * len(buffers))
            for i, (gpa, n, flags) in enumerate(buffers):
                last = i == len(buffers) - 1
                self.write_desc(i, gpa, n, flags | (0 if last else DESC_F_NEXT), i + 1, table=table)
            head = self.free.pop(0)
            self.write_desc(head, table, 16 * len(buffers), DESC_F_INDIRECT)
            self.chains[head] = [head]
        else:
            indices = [self.free.pop(0) for _ in buffers]
            for i, (gpa, n, flags) in enumerate(buffers):
                last = i == len(buffers) - 1
                self.write_desc(indices[i], gpa, n, flags | (0 if last else DESC_F_NEXT),
                                0 if last else indices[i + 1])
            head = indices[0]
            self.chains[head] = indices
        self.publish(head)
        return head, writable

    def publish(self, head: int) -> None:
        """Put `head` in the available ring and move idx (no notify)."""
        slot = self.avail_idx % self.size
        self.memory.write(self.avail + 4 + 2 * slot, U16.pack(head))
        self.avail_idx = (self.avail_idx + 1) & 0xFFFF
        self.memory.write(self.avail + 2, U16.pack(self.avail_idx))

    def notify(self) -> None:
        self.driver.write(m.QUEUE_NOTIFY, self.index)

    def submit(self, out=(), in_=(), indirect=False):
        """add + notify; returns the used entries that came back and the writable buffers."""
        _, writable = self.add(out, in_, indirect)
        self.notify()
        return self.take_used(), writable

    # --- completions --------------------------------------------------------------------------
    def used_idx(self) -> int:
        return U16.unpack(self.memory.read(self.used + 2, 2))[0]

    def take_used(self) -> list:
        """The (id, len) entries added since the last call; their descriptors are freed."""
        entries = []
        while self.last_used != self.used_idx():
            slot = self.last_used % self.size
            entries.append(USED_ELEM.unpack(self.memory.read(self.used + 4 + 8 * slot, 8)))
            self.last_used = (self.last_used + 1) & 0xFFFF
        for head, _ in entries:
            self.free.extend(self.chains.pop(head, []))
        return entries

    def set_avail_flags(self, flags: int) -> None:
        self.memory.write(self.avail, U16.pack(flags))

    def set_used_event(self, value: int) -> None:
        self.memory.write(self.avail + 4 + 2 * self.size, U16.pack(value))

    def avail_event(self) -> int:
        return U16.unpack(self.memory.read(self.used + 4 + 8 * self.size, 2))[0]


class Recorder(VirtioDevice):
    """A test device: records each chain and fills its writable buffers with 0xAB."""
    device_id = 42
    queue_max_sizes = (16, 8)

    def __init__(self, features: int = 0, config: bytes = b""):
        super().__init__(features, config)
        self.chains = []
        self.resets = 0
        self.activations = 0

    def reset(self):
        self.resets += 1

    def activate(self):
        self.activations += 1

    def process(self, index):
        self.serve(index, self._record)

    def _record(self, chain):
        self.chains.append(chain)
        if chain.error is not None:
            return 0
        written = 0
        for gpa, n in chain.writable:
            self.memory.write(gpa, b"\xAB" * n)
            written += n
        return written


# --- the helper's own checks ---------------------------------------------------------------------
def test_driver_rings_are_aligned_and_inside_ram():
    drv = Driver(Recorder()).start()
    for q in drv.queues:
        assert q.desc % 16 == 0 and q.avail % 2 == 0 and q.used % 4 == 0
        assert drv.memory.contains(q.used, 6 + 8 * q.size)


def test_driver_round_trip_frees_descriptors():
    drv = Driver(Recorder()).start()
    q = drv.queues[0]
    for _ in range(3 * q.size):
        used, _ = q.submit([b"x"], [4])
        assert len(used) == 1
    assert sorted(q.free) == list(range(q.size))
