"""virtio-blk against a host file (virtio 1.2 5.2): the request types, errors, the read-only
promise, configuration space, and that completed writes survive the VMM being killed."""
import hashlib
import os
import signal
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from virtio_driver import Driver
from vmm.devices.virtio import blk as b
from vmm.devices.virtio import mmio as m
from vmm.devices.virtio.device import VIRTIO_F_VERSION_1
from vmm.devices.virtio.queue import DESC_F_NEXT, DESC_F_WRITE
from vmm.errors import InputError

SECTORS = 64


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(bytes(range(256)) * (SECTORS * 2))        # 64 sectors, known content
    return path


def started(path, read_only=False):
    dev = b.VirtioBlock(str(path), read_only=read_only)
    return Driver(dev).start(), dev


def header(kind, sector=0):
    return struct.pack("<IIQ", kind, 0, sector)


def request(drv, kind, sector=0, data=b"", read=0, indirect=False):
    """One request; returns (status, used length, bytes read)."""
    q = drv.queues[0]
    out = [header(kind, sector)] + ([data] if data else [])
    used, writable = q.submit(out, ([read] if read else []) + [1], indirect=indirect)
    assert len(used) == 1
    status_gpa, _ = writable[-1]
    got = drv.memory.read(writable[0][0], read) if read else b""
    return drv.memory.read(status_gpa, 1)[0], used[0][1], got


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_config_space_and_features(disk):
    drv, dev = started(disk)
    config = bytes(drv.transport.read(m.CONFIG + i, 1) for i in range(b.CONFIG.size))
    capacity, size_max, seg_max, _, _, _, blk_size = struct.unpack_from("<QIIHBBI", config)
    assert (capacity, seg_max, blk_size) == (SECTORS, 254, 512) and size_max > 0
    assert drv.transport.read(m.CONFIG, 4) == SECTORS               # 32-bit halves, as Linux reads it
    assert drv.transport.read(m.CONFIG + 4, 4) == 0
    features = drv.device_features()
    for bit in (b.VIRTIO_BLK_F_SEG_MAX, b.VIRTIO_BLK_F_SIZE_MAX, b.VIRTIO_BLK_F_BLK_SIZE,
                b.VIRTIO_BLK_F_FLUSH, VIRTIO_F_VERSION_1):
        assert features & bit
    assert not features & b.VIRTIO_BLK_F_RO
    assert drv.read(m.DEVICE_ID) == 2
    dev.close()


def test_read(disk):
    drv, dev = started(disk)
    status, used_len, got = request(drv, b.VIRTIO_BLK_T_IN, sector=3, read=1024)
    assert status == b.VIRTIO_BLK_S_OK and used_len == 1025
    assert got == disk.read_bytes()[3 * 512:5 * 512]
    dev.close()


def test_read_into_many_buffers_and_an_indirect_table(disk):
    drv, dev = started(disk)
    q = drv.queues[0]
    _, writable = q.add([header(b.VIRTIO_BLK_T_IN, 1)], [100, 412, 512, 1], indirect=True)
    q.notify()
    assert q.take_used()[0][1] == 1025
    data = b"".join(drv.memory.read(gpa, n) for gpa, n in writable[:-1])
    assert data == disk.read_bytes()[512:1536]
    dev.close()


def test_read_notifies_memory_listeners(disk):
    drv, dev = started(disk)
    noted = []
    drv.memory.on_write(lambda gpa, n: noted.append((gpa, n)))
    q = drv.queues[0]
    _, writable = q.add([header(b.VIRTIO_BLK_T_IN, 0)], [512, 1])
    q.notify()
    assert writable[0] in noted                 # data (the software engine drops stale code)
    assert (writable[1][0], 1) in noted         # status byte
    dev.close()


def test_header_split_across_descriptors(disk):
    drv, dev = started(disk)
    q = drv.queues[0]
    hdr = header(b.VIRTIO_BLK_T_IN, 2)
    _, writable = q.add([hdr[:5], hdr[5:]], [512, 1])
    q.notify()
    assert q.take_used()[0][1] == 513
    assert drv.memory.read(writable[0][0], 512) == disk.read_bytes()[1024:1536]
    dev.close()


def test_write_then_read_back(disk):
    drv, dev = started(disk)
    payload = os.urandom(1024)
    status, used_len, _ = request(drv, b.VIRTIO_BLK_T_OUT, sector=10, data=payload)
    assert status == b.VIRTIO_BLK_S_OK and used_len == 1
    assert disk.read_bytes()[5120:6144] == payload
    assert disk.stat().st_size == SECTORS * 512
    assert request(drv, b.VIRTIO_BLK_T_IN, sector=10, read=1024)[2] == payload
    dev.close()


def test_write_data_split_with_the_header_in_one_buffer(disk):
    drv, dev = started(disk)
    payload = os.urandom(512)
    q = drv.queues[0]
    q.add([header(b.VIRTIO_BLK_T_OUT, 0) + payload[:100], payload[100:]], [1])
    q.notify()
    assert q.take_used()[0][1] == 1
    assert disk.read_bytes()[:512] == payload
    dev.close()


def test_flush(disk):
    drv, dev = started(disk)
    status, used_len, _ = request(drv, b.VIRTIO_BLK_T_FLUSH)
    assert (status, used_len) == (b.VIRTIO_BLK_S_OK, 1)
    dev.close()


def test_get_id(disk):
    drv, dev = started(disk)
    status, used_len, got = request(drv, b.VIRTIO_BLK_T_GET_ID, read=20)
    assert status == b.VIRTIO_BLK_S_OK and used_len == 21
    assert got == b"pyvmm-vda".ljust(20, b"\0")
    dev.close()


def test_unknown_request_type_is_unsupported(disk):
    drv, dev = started(disk)
    before = sha(disk)
    for kind in (2, 11, 13, 0xFFFF_FFFF):
        status, used_len, _ = request(drv, kind, read=512)
        assert (status, used_len) == (b.VIRTIO_BLK_S_UNSUPP, 1)
    assert sha(disk) == before
    dev.close()


@pytest.mark.parametrize("sector,length", [
    (SECTORS, 512),                 # starts at the end
    (SECTORS - 1, 1024),            # runs past the end
    ((1 << 64) - 1, 512),           # sector * 512 beyond any file
    (0, 100),                       # not a whole number of sectors
])
def test_read_beyond_the_disk_or_partial_sector_is_an_io_error(disk, sector, length):
    drv, dev = started(disk)
    status, used_len, _ = request(drv, b.VIRTIO_BLK_T_IN, sector=sector, read=length)
    assert (status, used_len) == (b.VIRTIO_BLK_S_IOERR, 1)
    dev.close()


@pytest.mark.parametrize("sector,length", [(SECTORS, 512), (SECTORS - 1, 1024), (0, 100)])
def test_write_beyond_the_disk_neither_extends_nor_writes(disk, sector, length):
    drv, dev = started(disk)
    before = sha(disk)
    status, _, _ = request(drv, b.VIRTIO_BLK_T_OUT, sector=sector, data=os.urandom(length))
    assert status == b.VIRTIO_BLK_S_IOERR
    assert sha(disk) == before and disk.stat().st_size == SECTORS * 512
    dev.close()


def test_read_only_disk_refuses_writes_and_leaves_the_file_alone(disk):
    drv, dev = started(disk, read_only=True)
    assert drv.device_features() & b.VIRTIO_BLK_F_RO
    before = sha(disk)
    status, used_len, _ = request(drv, b.VIRTIO_BLK_T_OUT, sector=0, data=os.urandom(512))
    assert (status, used_len) == (b.VIRTIO_BLK_S_IOERR, 1)
    assert request(drv, b.VIRTIO_BLK_T_FLUSH)[0] == b.VIRTIO_BLK_S_OK
    assert request(drv, b.VIRTIO_BLK_T_IN, sector=0, read=512)[2] == disk.read_bytes()[:512]
    assert sha(disk) == before
    dev.close()


def test_read_only_disk_opens_a_file_without_write_permission(disk):
    """A file without write permission is refused as a writable disk for every user, root
    included (whom permissions would not stop), and opens as a read-only one."""
    disk.chmod(0o444)
    dev = b.VirtioBlock(str(disk), read_only=True)
    dev.close()
    message = "is read-only .mode 0444.: attach it with `,ro`" if os.geteuid() == 0 else "for writing"
    with pytest.raises(InputError, match=message):
        b.VirtioBlock(str(disk))


def test_missing_or_unsuitable_files_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="disk image .*absent.img does not exist") as err:
        b.VirtioBlock(str(tmp_path / "absent.img"))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="not a regular file"):
        b.VirtioBlock(str(tmp_path), read_only=True)
    with pytest.raises(InputError):
        b.VirtioBlock(str(tmp_path))


def test_request_without_a_full_header_is_an_io_error(disk):
    drv, dev = started(disk)
    q = drv.queues[0]
    _, writable = q.add([b"short"], [1])
    q.notify()
    assert q.take_used()[0][1] == 1
    assert drv.memory.read(writable[0][0], 1)[0] == b.VIRTIO_BLK_S_IOERR
    dev.close()


def test_request_without_a_status_byte_is_returned_unwritten(disk):
    drv, dev = started(disk)
    before = sha(disk)
    q = drv.queues[0]
    q.add([header(b.VIRTIO_BLK_T_OUT, 0), os.urandom(512)])
    q.notify()
    assert q.take_used()[0][1] == 0
    assert sha(disk) == before                  # no status byte: the request was not run
    dev.close()


def test_malformed_chain_with_a_status_byte_reports_an_io_error(disk):
    drv, dev = started(disk)
    before = sha(disk)
    q = drv.queues[0]
    status = drv.alloc(1)
    q.write_desc(0, drv.put(header(b.VIRTIO_BLK_T_OUT, 0)), 16, DESC_F_NEXT, 1)
    q.write_desc(1, 1 << 40, 512, DESC_F_NEXT, 2)               # data outside RAM
    q.write_desc(2, status, 1, DESC_F_WRITE)
    q.publish(0)
    q.notify()
    assert q.take_used() == [(0, 1)]
    assert drv.memory.read(status, 1)[0] == b.VIRTIO_BLK_S_IOERR
    assert sha(disk) == before and not drv.status & m.DEVICE_NEEDS_RESET
    dev.close()


def test_disk_size_not_a_multiple_of_512(tmp_path):
    path = tmp_path / "odd.img"
    path.write_bytes(bytes(1000))
    drv, dev = started(path)
    assert drv.transport.read(m.CONFIG, 4) == 1
    assert request(drv, b.VIRTIO_BLK_T_IN, sector=1, read=512)[0] == b.VIRTIO_BLK_S_IOERR
    assert request(drv, b.VIRTIO_BLK_T_OUT, sector=1, data=bytes(512))[0] == b.VIRTIO_BLK_S_IOERR
    assert path.stat().st_size == 1000
    dev.close()


CHILD = textwrap.dedent("""
    import os, struct, sys, time
    sys.path.insert(0, {tests!r})
    from virtio_driver import Driver
    from vmm.devices.virtio.blk import VirtioBlock
    drv = Driver(VirtioBlock({path!r})).start()
    q = drv.queues[0]
    payload = bytes.fromhex({payload!r})
    for kind, out in ((1, [struct.pack("<IIQ", 1, 0, 4), payload]), (4, [struct.pack("<IIQ", 4, 0, 0)])):
        _, writable = q.add(out, [1])
        q.notify()
        assert q.take_used(), kind
        assert drv.memory.read(writable[-1][0], 1) == b"\\0", kind
    print("flushed", flush=True)
    time.sleep(60)
""")


def test_completed_write_and_flush_survive_sigkill(disk):
    payload = os.urandom(1024)
    tests = str(Path(__file__).parent)
    code = CHILD.format(tests=tests, path=str(disk), payload=payload.hex())
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent.parent))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert child.stdout.readline().strip() == "flushed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    assert disk.read_bytes()[4 * 512:6 * 512] == payload


def test_disk_image_that_shrank_gives_an_io_error(disk):
    drv, dev = started(disk)
    os.truncate(disk, 512)                      # someone else cut the file under us
    status, used_len, _ = request(drv, b.VIRTIO_BLK_T_IN, sector=2, read=512)
    assert (status, used_len) == (b.VIRTIO_BLK_S_IOERR, 1)
    dev.close()


def test_short_transfers_are_resumed():
    chunks = []

    def trickle(fd, buffers, offset):           # a preadv that moves at most 100 bytes
        chunks.append((offset, [len(x) for x in buffers]))
        n = min(100, len(buffers[0]))
        buffers[0][:n] = bytes([offset % 256]) * n
        return n

    bufs = [memoryview(bytearray(150)), memoryview(bytearray(250))]
    b._transfer(trickle, -1, list(bufs), 1000)
    assert [offset for offset, _ in chunks] == [1000, 1100, 1150, 1250, 1350]
    assert bytes(bufs[0][:100]) == bytes([1000 % 256]) * 100
    assert bytes(bufs[1][200:]) == bytes([1350 % 256]) * 50
