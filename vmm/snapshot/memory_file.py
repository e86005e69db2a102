"""Guest RAM in a snapshot: the `memory` file.

Saving writes only pages that hold something: the file is created at the size of RAM and
zero pages stay holes, so a 256 MiB guest that uses 20 MiB takes 20 MiB of disk. A diff
snapshot (KVM's dirty log, `--snapshot-dirty`) writes only the pages written since the last
snapshot and lists them as page ranges in its manifest; its `base` names the snapshot they
go on top of.

Restoring maps the file MAP_PRIVATE as guest RAM (memory.py), as Firecracker does: nothing
is copied up front, a page is read from the file when the guest first touches it, and the
guest's writes go to private copies, so the file is never written and one snapshot can be
restored any number of times. A diff is restored by mapping its base and copying its own
ranges over it. The file must be exactly the size of RAM (checked first): a shorter one
would fault the VMM on the guest's first touch of a missing page.

A snapshot taken on KVM with dirty logging needs the pages the VMM itself wrote too (device
DMA into RAM, which KVM's log does not see): HostWriteLog records them from the memory's
write listeners.
"""
import os
import stat

from ..layout import PAGE_SIZE
from ..memory import GuestMemory
from .manifest import SnapshotError

SCAN_CHUNK = 64 * 1024                 # looked at whole first: most of a guest's RAM is zero
ZERO_PAGE = bytes(PAGE_SIZE)
ZERO_CHUNK = bytes(SCAN_CHUNK)


def write_full(memory: GuestMemory, path: str) -> int:
    """RAM into a sparse file at `path`; returns the bytes of data written."""
    return _write(memory, path, _nonzero_runs(memory, 0, memory.size // PAGE_SIZE))


def write_pages(memory: GuestMemory, path: str, ranges) -> int:
    """Only the pages in `ranges` ([first page, pages]), zero pages as holes."""
    runs = []
    for first, count in ranges:
        runs.extend(_nonzero_runs(memory, first, first + count))
    return _write(memory, path, runs)


def _write(memory, path, runs) -> int:
    written = 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.ftruncate(fd, memory.size)
        for first, count in runs:
            offset, length = first * PAGE_SIZE, count * PAGE_SIZE
            data = memory.read(offset, length)
            while data:
                done = os.pwrite(fd, data, offset)
                data, offset, written = data[done:], offset + done, written + done
    finally:
        os.close(fd)
    return written


def _nonzero_runs(memory, first: int, end: int):
    """[(first page, pages)] of the non-zero pages in [first, end), merged into runs."""
    runs = []
    per_chunk = SCAN_CHUNK // PAGE_SIZE
    page = first
    while page < end:
        chunk_end = min(end, (page // per_chunk + 1) * per_chunk)
        if chunk_end - page == per_chunk and memory.read(page * PAGE_SIZE, SCAN_CHUNK) == ZERO_CHUNK:
            page = chunk_end
            continue
        for p in range(page, chunk_end):
            if memory.read(p * PAGE_SIZE, PAGE_SIZE) != ZERO_PAGE:
                if runs and runs[-1][0] + runs[-1][1] == p:
                    runs[-1][1] += 1
                else:
                    runs.append([p, 1])
        page = chunk_end
    return runs


def ranges_from_bitmap(bitmap: bytes, pages: int):
    """[[first page, pages]] of the set bits of a dirty-page bitmap (bit i of byte i // 8)."""
    ranges = []
    for byte_index, byte in enumerate(bitmap):
        if not byte:
            continue
        for bit in range(8):
            page = byte_index * 8 + bit
            if byte >> bit & 1 and page < pages:
                if ranges and ranges[-1][0] + ranges[-1][1] == page:
                    ranges[-1][1] += 1
                else:
                    ranges.append([page, 1])
    return ranges


def merge_bitmaps(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "little") | int.from_bytes(b, "little")).to_bytes(max(len(a), len(b)), "little")


def map_memory(layers, size: int) -> GuestMemory:
    """Guest RAM from a snapshot's memory files: `layers` is [(path, ranges)], the full
    snapshot first (ranges None), then each diff on top of it."""
    root, _ = layers[0]
    fd = _open_checked(root, size)
    try:
        memory = GuestMemory(size, backing_fd=fd)
    finally:
        os.close(fd)
    try:
        for path, ranges in layers[1:]:
            _apply_diff(memory, path, ranges, size)
    except BaseException:
        memory.close()
        raise
    return memory


def _open_checked(path: str, size: int) -> int:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)      # a FIFO must not block us
    except FileNotFoundError:
        raise SnapshotError(f"the snapshot's memory file {path} is missing") from None
    except OSError as error:
        raise SnapshotError(f"cannot open the snapshot's memory file {path}: {error.strerror}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SnapshotError(f"the snapshot's memory file {path} is not a regular file")
    actual = info.st_size
    if actual != size:
        os.close(fd)
        raise SnapshotError(f"the snapshot's memory file {path} is {actual} bytes, not the {size} of guest RAM "
                            "(truncated or not this snapshot's)")
    return fd


def _apply_diff(memory, path, ranges, size) -> None:
    fd = _open_checked(path, size)
    try:
        for first, count in ranges:
            offset, length = first * PAGE_SIZE, count * PAGE_SIZE
            if first < 0 or count <= 0 or offset + length > size:
                raise SnapshotError(f"{path}: page range {first}+{count} is outside guest RAM")
            view = memory.view(offset, length)
            done = 0
            while done < length:
                n = os.preadv(fd, [view[done:]], offset + done)
                if n <= 0:
                    raise SnapshotError(f"{path} ended early")
                done += n
    finally:
        os.close(fd)


class HostWriteLog:
    """The pages of guest RAM the VMM wrote (memory.py write listeners), one byte per page."""

    def __init__(self, memory: GuestMemory):
        self.pages = bytearray(memory.size // PAGE_SIZE)
        self._memory = memory
        memory.on_write(self.wrote)

    def wrote(self, gpa: int, length: int) -> None:
        if length > 0:
            first, last = gpa // PAGE_SIZE, (gpa + length - 1) // PAGE_SIZE
            self.pages[first:last + 1] = b"\x01" * (last - first + 1)

    def take(self) -> bytes:
        """The pages written since the last take(), as a bitmap like KVM's dirty log."""
        pages, self.pages = self.pages, bytearray(len(self.pages))
        bitmap = bytearray((len(pages) + 7) // 8)
        for page, dirty in enumerate(pages):
            if dirty:
                bitmap[page // 8] |= 1 << (page % 8)
        return bytes(bitmap)

    def close(self) -> None:
        self._memory.remove_write_listener(self.wrote)
