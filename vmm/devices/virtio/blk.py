"""virtio-blk (virtio 1.2 section 5.2) backed by a host file or block device.

A request is a 16-byte header {le32 type, le32 reserved, le64 sector} in device-readable
buffers, then data (readable for OUT, writable for IN), then one writable status byte. The
data moves zero-copy: preadv/pwritev straight between the file and memoryviews of guest RAM.

The disk's size is fixed when it is opened: the file is never truncated or extended, and a
request that reaches past the last whole 512-byte sector fails with IOERR. A read-only disk
is opened O_RDONLY and offers VIRTIO_BLK_F_RO, so a write cannot reach the file. Images are
locked as QEMU locks them (shared for read-only, exclusive for read-write: vmm/user_files.py). Writes go
to the host page cache (they survive the VMM being killed); FLUSH makes them durable with
fdatasync, and FLUSH is offered, so the guest knows the cache is write-back (5.2.6.3).
"""
import errno
import os
import struct

from ...errors import InputError
from ...user_files import open_disk
from .device import DEVICE_ID_BLOCK, VirtioDevice
from .queue import byte_range, gather, views

SECTOR_SIZE = 512

# Feature bits (5.2.3).
VIRTIO_BLK_F_SIZE_MAX = 1 << 1
VIRTIO_BLK_F_SEG_MAX = 1 << 2
VIRTIO_BLK_F_RO = 1 << 5
VIRTIO_BLK_F_BLK_SIZE = 1 << 6
VIRTIO_BLK_F_FLUSH = 1 << 9

# Request types and status values (5.2.6).
VIRTIO_BLK_T_IN = 0
VIRTIO_BLK_T_OUT = 1
VIRTIO_BLK_T_FLUSH = 4
VIRTIO_BLK_T_GET_ID = 8
VIRTIO_BLK_S_OK = 0
VIRTIO_BLK_S_IOERR = 1
VIRTIO_BLK_S_UNSUPP = 2

HEADER = struct.Struct("<IIQ")          # type, reserved, sector
ID_BYTES = 20                            # VIRTIO_BLK_ID_BYTES
DEFAULT_ID = b"pyvmm-vda"

# struct virtio_blk_config up to num_queues (5.2.4): capacity, size_max, seg_max,
# geometry {cylinders, heads, sectors}, blk_size, topology {physical_block_exp,
# alignment_offset, min_io_size, opt_io_size}, writeback, unused0, num_queues.
CONFIG = struct.Struct("<QIIHBBIBBHIBBH")

QUEUE_SIZE = 256
SIZE_MAX = 1 << 20                       # largest single buffer we advertise (not enforced)
IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024


class VirtioBlock(VirtioDevice):
    device_id = DEVICE_ID_BLOCK
    queue_max_sizes = (QUEUE_SIZE,)

    def __init__(self, path: str, read_only: bool = False, disk_id: bytes = DEFAULT_ID):
        self.path = path
        self.read_only = read_only
        self.disk_id = disk_id[:ID_BYTES].ljust(ID_BYTES, b"\0")
        self.fd = open_disk(path, read_only)      # type, permission and lock checks (user_files.py)
        try:
            self.capacity = os.lseek(self.fd, 0, os.SEEK_END) // SECTOR_SIZE
        except OSError as err:
            os.close(self.fd)
            raise InputError(f"cannot size disk image {path}: {err.strerror}") from None
        features = VIRTIO_BLK_F_SIZE_MAX | VIRTIO_BLK_F_SEG_MAX | VIRTIO_BLK_F_BLK_SIZE | VIRTIO_BLK_F_FLUSH
        if read_only:
            features |= VIRTIO_BLK_F_RO
        # seg_max = queue size - 2 leaves room for the header and status descriptors (as QEMU).
        config = CONFIG.pack(self.capacity, SIZE_MAX, QUEUE_SIZE - 2, 0, 0, 0, SECTOR_SIZE,
                             0, 0, 0, 0, 0, 0, 1)
        super().__init__(features, config)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def process(self, index: int) -> None:
        self.serve(index, self._handle)

    # --- one request -----------------------------------------------------------------------------
    def _handle(self, chain) -> int:
        """Serve one chain; returns the bytes written into its writable buffers."""
        if not chain.writable:
            return 0                    # no status byte: nothing we could report
        memory = self.memory
        data_in = byte_range(chain.writable, 0, chain.writable_len() - 1)
        if chain.error is not None:
            status, written = VIRTIO_BLK_S_IOERR, 0
        else:
            status, written = self._execute(chain, data_in)
        gpa, length = chain.writable[-1]
        memory.write(gpa + length - 1, bytes((status,)))
        return written + 1

    def _execute(self, chain, data_in):
        header = gather(self.memory, chain.readable, 0, HEADER.size)
        if len(header) < HEADER.size:
            return VIRTIO_BLK_S_IOERR, 0
        kind, _, sector = HEADER.unpack(header)
        try:
            if kind == VIRTIO_BLK_T_IN:
                return self._read(sector, data_in)
            if kind == VIRTIO_BLK_T_OUT:
                return self._write(sector, byte_range(chain.readable, HEADER.size, chain.readable_len()))
            if kind == VIRTIO_BLK_T_FLUSH:
                if not self.read_only:
                    os.fdatasync(self.fd)
                return VIRTIO_BLK_S_OK, 0
            if kind == VIRTIO_BLK_T_GET_ID:
                return VIRTIO_BLK_S_OK, self._copy_to_guest(self.disk_id, data_in)
        except OSError:
            return VIRTIO_BLK_S_IOERR, 0
        return VIRTIO_BLK_S_UNSUPP, 0

    def _in_range(self, sector: int, length: int) -> bool:
        return length % SECTOR_SIZE == 0 and sector * SECTOR_SIZE + length <= self.capacity * SECTOR_SIZE

    def _read(self, sector: int, pieces):
        length = sum(n for _, n in pieces)
        if not self._in_range(sector, length):
            return VIRTIO_BLK_S_IOERR, 0
        try:
            _transfer(os.preadv, self.fd, views(self.memory, pieces), sector * SECTOR_SIZE)
        finally:
            for gpa, n in pieces:       # even after a failure part-way: RAM may have changed
                self.memory.wrote(gpa, n)   # the guest may run this as code (unicorn's caches)
        return VIRTIO_BLK_S_OK, length

    def _write(self, sector: int, pieces):
        length = sum(n for _, n in pieces)
        if self.read_only or not self._in_range(sector, length):
            return VIRTIO_BLK_S_IOERR, 0
        _transfer(os.pwritev, self.fd, views(self.memory, pieces), sector * SECTOR_SIZE)
        return VIRTIO_BLK_S_OK, 0

    def _copy_to_guest(self, data: bytes, pieces) -> int:
        done = 0
        for gpa, n in pieces:
            chunk = data[done:done + n]
            if not chunk:
                break
            self.memory.write(gpa, chunk)
            done += len(chunk)
        return done


def _transfer(call, fd: int, buffers, offset: int) -> None:
    """preadv/pwritev all of `buffers` at `offset`, resuming after short transfers and in
    batches of IOV_MAX buffers. Raises OSError (EIO if the file ended early)."""
    i = 0
    while i < len(buffers):
        done = call(fd, buffers[i:i + IOV_MAX], offset)
        if done <= 0:
            raise OSError(errno.EIO, "short transfer: the disk image shrank?")
        offset += done
        while i < len(buffers) and done >= len(buffers[i]):
            done -= len(buffers[i])
            i += 1
        if done:
            buffers[i] = buffers[i][done:]
