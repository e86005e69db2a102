"""The split virtqueue walker (virtio 1.2 2.7): chains, indirect tables, notification
suppression, and a guest that lies about everything."""
import os
import random
import struct

import pytest

from virtio_driver import Driver, Recorder
from vmm.devices.virtio import mmio as m
from vmm.devices.virtio.blk import VirtioBlock
from vmm.devices.virtio.console import VirtioConsole
from vmm.devices.virtio.device import VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC
from vmm.devices.virtio.queue import (AVAIL_F_NO_INTERRUPT, DESC, DESC_F_INDIRECT, DESC_F_NEXT,
                                      DESC_F_WRITE, byte_range)
from vmm.devices.virtio.rng import VirtioRng
from vmm.memory import GuestMemory


def started(drop=0, **kwargs):
    drv = Driver(Recorder(), **kwargs).start(drop=drop)
    return drv, drv.queues[0], drv.device


def broken(drv) -> bool:
    return bool(drv.status & m.DEVICE_NEEDS_RESET)


# --- well-formed chains ---------------------------------------------------------------------------
def test_chained_descriptors_readable_then_writable():
    drv, q, dev = started()
    used, writable = q.submit([b"head", b"er"], [3, 5])
    chain = dev.chains[-1]
    assert [drv.memory.read(gpa, n) for gpa, n in chain.readable] == [b"head", b"er"]
    assert chain.writable == writable
    assert used == [(chain.head, 8)]
    assert all(drv.memory.read(gpa, n) == b"\xAB" * n for gpa, n in writable)


def test_indirect_table():
    drv, q, dev = started()
    used, writable = q.submit([b"abc", b"def"], [7], indirect=True)
    chain = dev.chains[-1]
    assert [drv.memory.read(gpa, n) for gpa, n in chain.readable] == [b"abc", b"def"]
    assert chain.writable == writable and chain.error is None
    assert used == [(chain.head, 7)]


def test_direct_descriptors_followed_by_an_indirect_one():
    """2.7.5.3.2: zero or more chained descriptors, then one INDIRECT descriptor."""
    drv, q, dev = started()
    first = drv.put(b"direct")
    second = drv.put(b"in-table")
    out = drv.alloc(4)
    table = drv.alloc(32)
    q.write_desc(0, second, 8, DESC_F_NEXT, 1, table=table)
    q.write_desc(1, out, 4, DESC_F_WRITE, 0, table=table)
    q.write_desc(3, first, 6, DESC_F_NEXT, 9)
    q.write_desc(9, table, 32, DESC_F_INDIRECT | DESC_F_WRITE)   # WRITE on it is ignored
    q.publish(3)
    q.notify()
    chain = dev.chains[-1]
    assert chain.error is None
    assert [drv.memory.read(gpa, n) for gpa, n in chain.readable] == [b"direct", b"in-table"]
    assert chain.writable == [(out, 4)]


def test_zero_length_buffers_are_skipped():
    drv, q, dev = started()
    data = drv.put(b"data")
    q.write_desc(0, 0xFFFF_FFFF_0000, 0, DESC_F_NEXT, 1)   # zero length: address irrelevant
    q.write_desc(1, data, 4, 0)
    q.publish(0)
    q.notify()
    assert dev.chains[-1].readable == [(data, 4)] and dev.chains[-1].error is None


def test_many_requests_wrap_the_rings_and_the_16_bit_indices():
    drv, q, dev = started()
    for i in range(70000 // 16):
        for _ in range(16):
            q.add([b"x"])
        q.notify()
        assert len(q.take_used()) == 16
    assert len(dev.chains) == (70000 // 16) * 16
    assert not broken(drv)


def test_byte_range_covers_bytes_across_buffers():
    segs = [(100, 4), (200, 10), (300, 2)]
    assert byte_range(segs, 0, 16) == segs
    assert byte_range(segs, 3, 3) == [(103, 1), (200, 2)]
    assert byte_range(segs, 14, 10) == [(300, 2)]
    assert byte_range(segs, 16, 1) == []


# --- notification suppression ------------------------------------------------------------------------
def test_no_interrupt_flag_without_event_idx():
    drv, q, _ = started(drop=VIRTIO_F_EVENT_IDX)
    q.set_avail_flags(AVAIL_F_NO_INTERRUPT)
    q.submit([b"a"])
    assert q.used_idx() == 1 and drv.read(m.INTERRUPT_STATUS) == 0
    q.set_avail_flags(0)
    q.submit([b"b"])
    assert drv.read(m.INTERRUPT_STATUS) == m.INT_USED_BUFFER


def test_event_idx_interrupts_only_when_used_index_passes_used_event():
    drv, q, _ = started()
    assert drv.transport.features & VIRTIO_F_EVENT_IDX
    q.set_avail_flags(AVAIL_F_NO_INTERRUPT)     # ignored with EVENT_IDX (2.7.10)
    q.submit([b"0"])                            # used_event 0: the first completion interrupts
    assert drv.ack() == m.INT_USED_BUFFER
    q.set_used_event(4)                         # "interrupt me when entry 4 is used"
    for i in range(1, 4):
        q.submit([bytes([i])])
        assert drv.read(m.INTERRUPT_STATUS) == 0, i
    q.submit([b"4"])
    assert drv.ack() == m.INT_USED_BUFFER
    q.submit([b"5"])                            # past it: quiet until used_event moves
    assert drv.read(m.INTERRUPT_STATUS) == 0


def test_event_idx_batch_crossing_used_event_interrupts_once():
    drv, q, _ = started()
    q.set_used_event(2)
    for _ in range(5):
        q.add([b"x"])
    q.notify()
    assert q.used_idx() == 5 and drv.ack() == m.INT_USED_BUFFER


def test_event_idx_publishes_avail_event():
    drv, q, _ = started()
    for _ in range(3):
        q.add([b"x"])
    q.notify()
    assert q.avail_event() == 3


# --- hostile guests: errors completed with the chain ----------------------------------------------------
@pytest.mark.parametrize("addr,length", [
    (1 << 20, 1),                   # just past RAM
    ((1 << 20) - 4, 8),             # straddles the end
    (0x50000, 0xFFFF_FFFF),         # 4 GiB buffer
    ((1 << 64) - 8, 16),            # wraps past 2^64
    (1 << 63, 4),
])
def test_buffer_outside_ram_completes_with_an_error(addr, length):
    drv, q, dev = started()
    q.write_desc(0, addr, length, DESC_F_WRITE)
    q.publish(0)
    q.notify()
    assert dev.chains[-1].error is not None
    assert q.take_used() == [(0, 0)]
    assert not broken(drv)
    assert q.submit([b"next"])[0]                # the queue still works


def test_readable_after_writable_is_an_error():
    drv, q, dev = started()
    q.write_desc(0, drv.alloc(4), 4, DESC_F_WRITE | DESC_F_NEXT, 1)
    q.write_desc(1, drv.put(b"late"), 4, 0)
    q.publish(0)
    q.notify()
    assert "readable" in dev.chains[-1].error
    assert q.take_used() == [(0, 0)]


def test_indirect_table_outside_ram_is_an_error():
    drv, q, dev = started()
    q.write_desc(0, (1 << 20) - 16, 32, DESC_F_INDIRECT)
    q.publish(0)
    q.notify()
    assert "indirect" in dev.chains[-1].error and not broken(drv)


def test_chain_over_4_gib_in_total_is_an_error():
    memory = GuestMemory(1 << 30)               # lazily allocated: costs only touched pages
    try:
        drv, q, dev = started(memory=memory)
        for i in range(5):
            q.write_desc(i, 0, 1 << 30, DESC_F_NEXT if i < 4 else 0, i + 1)
        q.publish(0)
        q.notify()
        assert "4 GiB" in dev.chains[-1].error
    finally:
        memory.close()


# --- hostile guests: a broken ring needs a reset ---------------------------------------------------------
def expect_needs_reset(drv, q, dev, words):
    q.notify()
    assert broken(drv), drv.transport.error
    assert any(word in drv.transport.error for word in words), drv.transport.error
    assert drv.read(m.INTERRUPT_STATUS) & m.INT_CONFIG_CHANGE
    before = len(dev.chains)
    q.add([b"ignored"])
    q.notify()
    assert len(dev.chains) == before            # nothing more is served until reset
    drv.start()                                 # reset and start again: works
    assert drv.queues[0].submit([b"ok"])[0]


def test_descriptor_loop():
    drv, q, dev = started()
    data = drv.put(b"loop")
    q.write_desc(0, data, 4, DESC_F_NEXT, 1)
    q.write_desc(1, data, 4, DESC_F_NEXT, 0)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["loop"])


def test_descriptor_pointing_at_itself():
    drv, q, dev = started()
    q.write_desc(5, drv.put(b"x"), 1, DESC_F_NEXT, 5)
    q.publish(5)
    expect_needs_reset(drv, q, dev, ["loop"])


def test_loop_inside_an_indirect_table():
    drv, q, dev = started()
    table = drv.alloc(32)
    q.write_desc(0, drv.put(b"a"), 1, DESC_F_NEXT, 1, table=table)
    q.write_desc(1, drv.put(b"b"), 1, DESC_F_NEXT, 0, table=table)
    q.write_desc(0, table, 32, DESC_F_INDIRECT)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["loop"])


def test_next_index_out_of_range():
    drv, q, dev = started()
    q.write_desc(0, drv.put(b"x"), 1, DESC_F_NEXT, 16)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["next index"])


def test_head_index_out_of_range():
    drv, q, dev = started()
    q.publish(0xFFFF)
    expect_needs_reset(drv, q, dev, ["head"])


def test_available_index_jumping_beyond_the_queue_size():
    drv, q, dev = started()
    drv.memory.write(q.avail + 2, struct.pack("<H", q.size + 1))
    expect_needs_reset(drv, q, dev, ["available index"])


def test_indirect_inside_indirect():
    drv, q, dev = started()
    inner = drv.alloc(16)
    q.write_desc(0, drv.put(b"x"), 1, 0, table=inner)
    outer = drv.alloc(16)
    q.write_desc(0, inner, 16, DESC_F_INDIRECT, table=outer)
    q.write_desc(0, outer, 16, DESC_F_INDIRECT)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["inside an indirect"])


def test_indirect_without_the_feature():
    drv, q, dev = started(drop=VIRTIO_F_INDIRECT_DESC)
    table = drv.alloc(16)
    q.write_desc(0, drv.put(b"x"), 1, 0, table=table)
    q.write_desc(0, table, 16, DESC_F_INDIRECT)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["not negotiated"])


def test_indirect_with_next():
    drv, q, dev = started()
    table = drv.alloc(16)
    q.write_desc(0, drv.put(b"x"), 1, 0, table=table)
    q.write_desc(0, table, 16, DESC_F_INDIRECT | DESC_F_NEXT, 1)
    q.write_desc(1, drv.put(b"y"), 1, 0)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["INDIRECT and NEXT"])


@pytest.mark.parametrize("length", [0, 8, 24, 17 * 16, 0xFFFF_FFF0])
def test_indirect_table_of_a_bad_length(length):
    drv, q, dev = started()
    q.write_desc(0, drv.alloc(16), length, DESC_F_INDIRECT)
    q.publish(0)
    expect_needs_reset(drv, q, dev, ["indirect table length"])


# --- the randomised hostile guest -------------------------------------------------------------------
class StrictMemory(GuestMemory):
    """Guest RAM that records any attempt to reach outside it, and any write notice outside it."""

    def __init__(self, size):
        super().__init__(size)
        self.violations = []
        self.on_write(self._noted)

    def check(self, gpa, length):
        if not self.contains(gpa, length):
            self.violations.append(("access", gpa, length))
        super().check(gpa, length)

    def _noted(self, gpa, length):
        if not self.contains(gpa, length):
            self.violations.append(("wrote", gpa, length))


FUZZ_MEM = 0x20000          # 128 KiB: garbage addresses are mostly far outside it


def fuzz_addr(rnd):
    pick = rnd.random()
    if pick < 0.5:
        return rnd.randrange(0, FUZZ_MEM)
    if pick < 0.7:
        return FUZZ_MEM - rnd.randrange(0, 64)
    if pick < 0.85:
        return (1 << 64) - rnd.randrange(1, 64)
    return rnd.getrandbits(64)


def fuzz_len(rnd):
    pick = rnd.random()
    if pick < 0.15:
        return 0
    if pick < 0.6:
        return rnd.randrange(1, 600)
    if pick < 0.75:
        return 16 * rnd.randrange(1, 20)
    if pick < 0.85:
        return 0xFFFF_FFFF
    return rnd.getrandbits(32)


def fuzz_desc(rnd, size):
    flags = rnd.getrandbits(3) if rnd.random() < 0.9 else rnd.getrandbits(16)
    nxt = rnd.randrange(0, size + 2) if rnd.random() < 0.9 else rnd.getrandbits(16)
    return DESC.pack(fuzz_addr(rnd), fuzz_len(rnd), flags, nxt)


def fuzz_request(rnd, device):
    """(readable byte strings, writable lengths) of a plausible request for `device`."""
    if isinstance(device, VirtioBlock):
        kind = rnd.choice((0, 1, 4, 8, rnd.getrandbits(32)))
        header = struct.pack("<IIQ", kind, 0, rnd.choice((0, 1, 127, 128, rnd.getrandbits(64))))
        data = 512 * rnd.randrange(0, 4) + (rnd.randrange(0, 3) if rnd.random() < 0.1 else 0)
        if kind == 1:
            return [header, os.urandom(data)] if data else [header], [1]
        return [header], [data + 1] if data else [rnd.choice((1, 21))]
    return [os.urandom(rnd.randrange(1, 40))], [rnd.randrange(1, 600)]


def fuzz_case(rnd, drv):
    memory = drv.memory
    if rnd.random() < 0.05:                     # garbage register writes first
        for _ in range(rnd.randrange(1, 20)):
            drv.transport.write(rnd.randrange(0, 0x200), rnd.choice((1, 2, 4, 8)), rnd.getrandbits(32))
    drv.negotiate(drop=rnd.choice((0, VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC)))
    for index, max_size in enumerate(drv.device.queue_max_sizes):
        size = 1 << rnd.randrange(0, max_size.bit_length())
        drv.setup_queue(index, size if rnd.random() < 0.97 else rnd.randrange(0, 2 * max_size))
    drv.driver_ok()
    queues = drv.queues
    if rnd.random() < 0.5:
        # Plausible requests, then bit flips in the rings.
        for q in queues:
            for _ in range(rnd.randrange(0, min(q.size, 6) + 1)):
                if not q.free or len(q.free) < 4:
                    break
                q.add(*fuzz_request(rnd, drv.device), indirect=rnd.random() < 0.3)
        for _ in range(rnd.randrange(0, 8)):
            q = rnd.choice(queues)
            if q.size == 0:
                continue
            area, length = rnd.choice(((q.desc, 16 * q.size), (q.avail, 6 + 2 * q.size)))
            spot = area + rnd.randrange(length)
            memory.write(spot, bytes([memory.read(spot, 1)[0] ^ (1 << rnd.randrange(8))]))
    else:
        # Garbage: descriptor tables, heap (where indirect tables may point), avail rings.
        for q in queues:
            memory.write(q.desc, b"".join(fuzz_desc(rnd, q.size) for _ in range(q.size)))
            heads = struct.pack(f"<{q.size + 1}H", *(rnd.randrange(0, q.size + 1) for _ in range(q.size + 1)))
            ahead = rnd.randrange(0, q.size + 1) if rnd.random() < 0.9 else rnd.getrandbits(16)
            memory.write(q.avail, struct.pack("<HH", rnd.getrandbits(16), ahead) + heads)
        for _ in range(4):
            spot = rnd.randrange(drv.heap_start, FUZZ_MEM - 256)
            memory.write(spot, b"".join(fuzz_desc(rnd, 16) for _ in range(16)))
    if isinstance(drv.device, VirtioConsole) and rnd.random() < 0.5:
        drv.device.feed(os.urandom(rnd.randrange(1, 300)))
    for _ in range(rnd.randrange(1, 4)):
        drv.write(m.QUEUE_NOTIFY, rnd.randrange(0, len(queues) + 1))
        drv.ack()


def test_random_garbage_never_raises_escapes_ram_or_hangs(tmp_path):
    disk = tmp_path / "fuzz.img"
    disk.write_bytes(bytes(64 * 1024))
    devices = [Recorder(), VirtioRng(), VirtioBlock(str(disk)), VirtioConsole(output=lambda data: None)]
    drivers = []
    for dev in devices:
        memory = StrictMemory(FUZZ_MEM)
        drivers.append(Driver(dev, memory=memory))
    rnd = random.Random(20240601)
    cases = 8000
    outcomes = {"ok": 0, "needs_reset": 0}
    for case in range(cases):
        drv = drivers[case % len(drivers)]
        fuzz_case(rnd, drv)
        assert drv.memory.violations == [], (case, drv.memory.violations[:3])
        outcomes["needs_reset" if broken(drv) else "ok"] += 1
    devices[2].close()
    # The generator must exercise both the completed and the broken paths.
    assert outcomes["ok"] > cases // 10 and outcomes["needs_reset"] > cases // 10, outcomes
