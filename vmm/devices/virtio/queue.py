"""The split virtqueue (virtio 1.2 section 2.7), walked from the device side.

Layout in guest RAM (the driver allocates it and tells the transport where):
  descriptor table  16 * size bytes, 16-byte aligned: {le64 addr, le32 len, le16 flags, le16 next}
  available ring    6 + 2 * size bytes, 2-aligned:   {flags, idx, ring[size], used_event}
  used ring         6 + 8 * size bytes, 4-aligned:   {flags, idx, {le32 id, le32 len}[size], avail_event}

The guest writes every byte of it and may be hostile, so:
- the ring areas are checked against RAM (and alignment) once, when the queue is enabled;
  every buffer and indirect table is checked when its descriptor is read;
- every walk is bounded: a chain visits at most `size` descriptors of the ring's table plus at
  most `size` of one indirect table (the spec forbids longer chains), so a loop ends;
- each descriptor is copied out once (unpack_from), so the guest cannot change it between
  the check and the use.
Guest mistakes come in two kinds, as in QEMU and Firecracker:
- a broken ring (head or next index out of range, a loop, an indirect table inside an
  indirect table or of a bad length, INDIRECT without the feature, the available index
  running more than `size` ahead): the queue cannot be trusted any more. pop() raises
  QueueError and the queue stays broken until reset; the transport sets DEVICE_NEEDS_RESET.
- a bad buffer in a well-formed chain (outside RAM, readable after writable, over 4 GiB in
  total, indirect table outside RAM): pop() returns the chain with `error` set, and the device
  completes it with an error status, so the driver gets its descriptors back.
"""
import struct

from ...errors import VmmError

DESC_F_NEXT = 1
DESC_F_WRITE = 2
DESC_F_INDIRECT = 4
AVAIL_F_NO_INTERRUPT = 1

DESC_SIZE = 16
DESC = struct.Struct("<QIHH")           # addr, len, flags, next
USED_ELEM = struct.Struct("<II")         # id, len
U16 = struct.Struct("<H")

MAX_QUEUE_SIZE = 32768                   # the split ring's limit (2.7)
MAX_CHAIN_BYTES = 1 << 32                # "Drivers MUST NOT add a descriptor chain longer than 2^32 bytes"

# (what, alignment, bytes for a queue of `size`) for each ring area, in the spec's table order.
RING_AREAS = (
    ("descriptor table", 16, lambda size: DESC_SIZE * size),
    ("available ring", 2, lambda size: 6 + 2 * size),
    ("used ring", 4, lambda size: 6 + 8 * size),
)


class QueueError(VmmError):
    """The guest broke a virtqueue's structure: the device needs a reset."""


class Chain:
    """One request: the head index, and the buffers as (gpa, length) lists, all inside RAM.
    Zero-length buffers are left out. `error` says why the chain is unusable, or is None."""
    __slots__ = ("head", "readable", "writable", "error")

    def __init__(self, head: int):
        self.head = head
        self.readable = []
        self.writable = []
        self.error = None

    def readable_len(self) -> int:
        return sum(length for _, length in self.readable)

    def writable_len(self) -> int:
        return sum(length for _, length in self.writable)


def byte_range(segments, skip: int, length: int):
    """The (gpa, length) pieces covering bytes [skip, skip+length) of the byte stream that
    `segments` describe (a request's header, data and status share buffers as the driver
    pleases: 2.6.4 "the device MUST NOT make assumptions about the arrangement")."""
    pieces = []
    for gpa, seg_len in segments:
        if length <= 0:
            break
        if skip >= seg_len:
            skip -= seg_len
            continue
        take = min(seg_len - skip, length)
        pieces.append((gpa + skip, take))
        length -= take
        skip = 0
    return pieces


def views(memory, segments):
    """Zero-copy memoryviews of guest RAM for (gpa, length) pieces."""
    return [memory.view(gpa, length) for gpa, length in segments]


def gather(memory, segments, skip: int = 0, length: int = MAX_CHAIN_BYTES) -> bytes:
    """A copy of bytes [skip, skip+length) of the buffers (for small things: headers)."""
    return b"".join(memory.read(gpa, n) for gpa, n in byte_range(segments, skip, length))


class Virtqueue:
    def __init__(self, memory, max_size: int):
        assert 0 < max_size <= MAX_QUEUE_SIZE and max_size & (max_size - 1) == 0
        self.memory = memory
        self.max_size = max_size
        self.reset()

    def reset(self) -> None:
        """The state after a device reset: not ready, everything zero, size = max."""
        self.size = self.max_size           # QueueNum: the driver writes it before enabling
        self.desc_addr = 0
        self.avail_addr = 0
        self.used_addr = 0
        self.ready = False
        self.broken = False
        self.event_idx = False
        self.indirect = False
        self.last_avail = 0                 # the next available-ring slot the device reads
        self.next_used = 0                  # the used index the device publishes
        self._signalled_used = 0            # next_used when the interrupt decision was last made
        self._desc = self._avail = self._used = None

    # --- snapshots (devices/state.py) ---------------------------------------------------------
    _STATE_FIELDS = ("size", "desc_addr", "avail_addr", "used_addr", "ready", "broken", "event_idx",
                     "indirect", "last_avail", "next_used", "_signalled_used")

    def save_state(self) -> dict:
        from ..state import pick
        return pick(self, self._STATE_FIELDS)

    def load_state(self, state: dict) -> None:
        """The queue as saved; a ready one gets its ring views back, after the same checks as
        enable() (the addresses come from a file now, not from the driver)."""
        from ..state import StateError, put
        put(self, state, self._STATE_FIELDS)
        self._desc = self._avail = self._used = None
        if self.ready:
            problem = self.layout_problem()
            if problem is not None:
                raise StateError(f"virtqueue: {problem}")
            size = self.size
            self._desc = self.memory.view(self.desc_addr, DESC_SIZE * size)
            self._avail = self.memory.view(self.avail_addr, 6 + 2 * size)
            self._used = self.memory.view(self.used_addr, 6 + 8 * size)

    # --- enabling --------------------------------------------------------------------------
    def layout_problem(self):
        """Why the driver's size and addresses cannot be used, or None if they can."""
        size = self.size
        if not 0 < size <= self.max_size or size & (size - 1):
            return f"queue size {size} is not a power of two in 1..{self.max_size}"
        for (what, align, length), addr in zip(RING_AREAS, (self.desc_addr, self.avail_addr, self.used_addr)):
            if addr % align:
                return f"{what} at {addr:#x} is not {align}-byte aligned"
            if not self.memory.contains(addr, length(size)):
                return f"{what} at {addr:#x}+{length(size):#x} is outside RAM"
        return None

    def enable(self, event_idx: bool, indirect: bool):
        """QueueReady = 1. Returns None, or the reason the queue stays disabled."""
        problem = self.layout_problem()
        if problem is not None:
            return problem
        size = self.size
        self._desc = self.memory.view(self.desc_addr, DESC_SIZE * size)
        self._avail = self.memory.view(self.avail_addr, 6 + 2 * size)
        self._used = self.memory.view(self.used_addr, 6 + 8 * size)
        # A freshly enabled queue starts at index 0: the driver has just zeroed its memory.
        self.last_avail = self.next_used = self._signalled_used = 0
        self.broken = False
        self.set_features(event_idx, indirect)
        self.ready = True
        if event_idx:
            self._publish_avail_event()
        return None

    def set_features(self, event_idx: bool, indirect: bool) -> None:
        self.event_idx = event_idx
        self.indirect = indirect

    def disable(self) -> None:
        self.ready = False
        self._desc = self._avail = self._used = None

    # --- the available side ------------------------------------------------------------------
    def pop(self):
        """The next available chain, or None. Raises QueueError if the ring is broken."""
        if not self.ready or self.broken:
            return None
        pending = (U16.unpack_from(self._avail, 2)[0] - self.last_avail) & 0xFFFF
        if pending == 0:
            return None
        if pending > self.size:
            raise self._break(f"available index is {pending} entries ahead, beyond the queue size {self.size}")
        head = U16.unpack_from(self._avail, 4 + 2 * (self.last_avail & (self.size - 1)))[0]
        self.last_avail = (self.last_avail + 1) & 0xFFFF
        if self.event_idx:
            self._publish_avail_event()
        return self._walk(head)

    def _walk(self, head: int) -> Chain:
        size = self.size
        if head >= size:
            raise self._break(f"chain head {head} is outside the queue (size {size})")
        memory = self.memory
        chain = Chain(head)
        table, count, index = self._desc, size, head
        budget = size                       # descriptors left before we call it a loop
        in_indirect = False
        total = 0
        while True:
            if budget == 0:
                raise self._break(f"descriptor chain from head {head} is longer than its table (a loop?)")
            budget -= 1
            addr, length, flags, nxt = DESC.unpack_from(table, DESC_SIZE * index)
            if flags & DESC_F_INDIRECT:
                if in_indirect:
                    raise self._break("indirect descriptor inside an indirect table")
                if not self.indirect:
                    raise self._break("indirect descriptor, but VIRTIO_F_INDIRECT_DESC was not negotiated")
                if flags & DESC_F_NEXT:
                    raise self._break("descriptor has both INDIRECT and NEXT")
                if length == 0 or length % DESC_SIZE or length // DESC_SIZE > size:
                    raise self._break(f"indirect table length {length} is not 16..{16 * size} in steps of 16")
                if not memory.contains(addr, length):
                    chain.error = f"indirect table {addr:#x}+{length:#x} is outside RAM"
                    return chain
                table, count, index = memory.view(addr, length), length // DESC_SIZE, 0
                budget = count
                in_indirect = True
                continue
            if length:
                total += length
                if not memory.contains(addr, length):
                    chain.error = chain.error or f"buffer {addr:#x}+{length:#x} is outside RAM"
                elif flags & DESC_F_WRITE:
                    chain.writable.append((addr, length))
                elif chain.writable:
                    chain.error = chain.error or "device-readable buffer after a device-writable one"
                else:
                    chain.readable.append((addr, length))
            if not flags & DESC_F_NEXT:
                break
            index = nxt
            if index >= count:
                raise self._break(f"next index {index} is outside its table ({count} descriptors)")
        if total > MAX_CHAIN_BYTES:
            chain.error = chain.error or f"chain is {total} bytes long, over 4 GiB"
        return chain

    def _break(self, reason: str) -> QueueError:
        self.broken = True
        return QueueError(reason)

    def _publish_avail_event(self) -> None:
        """avail_event = the next slot we will read: the driver notifies when it passes it."""
        offset = 4 + 8 * self.size
        U16.pack_into(self._used, offset, self.last_avail)
        self.memory.wrote(self.used_addr + offset, 2)

    # --- the used side -------------------------------------------------------------------------
    def add_used(self, head: int, written: int) -> None:
        """Return chain `head` to the driver, `written` bytes written into its buffers.
        The element goes in before the index moves (the spec's order; x86 keeps stores in order)."""
        offset = 4 + 8 * (self.next_used & (self.size - 1))
        USED_ELEM.pack_into(self._used, offset, head, written)
        self.memory.wrote(self.used_addr + offset, 8)
        self.next_used = (self.next_used + 1) & 0xFFFF
        U16.pack_into(self._used, 2, self.next_used)
        self.memory.wrote(self.used_addr + 2, 2)

    def should_interrupt(self) -> bool:
        """Whether the driver wants a used-buffer notification for the entries added since
        the last call (2.7.7 without EVENT_IDX, 2.7.10 with it)."""
        if not self.ready:
            return False
        old, new = self._signalled_used, self.next_used
        self._signalled_used = new
        if old == new:
            return False
        if self.event_idx:
            # Interrupt if used_event lies in [old, new): the driver asked to hear when the
            # used index passes it (Linux's vring_need_event, all arithmetic mod 2^16).
            used_event = U16.unpack_from(self._avail, 4 + 2 * self.size)[0]
            return (new - used_event - 1) & 0xFFFF < (new - old) & 0xFFFF
        return not U16.unpack_from(self._avail, 0)[0] & AVAIL_F_NO_INTERRUPT
