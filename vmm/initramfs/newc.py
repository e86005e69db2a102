"""The "newc" cpio format (070701), as Linux's initramfs reads it (init/initramfs.c and
Documentation/driver-api/early-userspace/buffer-format.rst).

An entry is a 110-byte header (the magic and 13 fields of 8 hex digits), the name with its
NUL (namesize bytes), padding to a multiple of 4, the data, padding to 4. The archive ends
with an entry named TRAILER!!!; archives may follow one another, with NUL padding between.

The writer aligns every regular file's data on a page: the header's namesize counts extra
NULs after the name (readers take the name up to its first NUL; Linux checks only that the
last byte is a NUL), so the tiny kernel maps the data in place instead of copying it in
ring 0. When the padding would make namesize exceed PATH_MAX, the file is left unaligned.
"""
from ..records import record

MAGIC = b"070701"
MAGIC_CRC = b"070702"           # same layout with a checksum, which Linux does not check either
HEADER_SIZE = 110
TRAILER = "TRAILER!!!"
PAGE = 4096
PATH_MAX = 4096                 # Linux refuses a longer namesize
FIELDS = ("ino", "mode", "uid", "gid", "nlink", "mtime", "filesize", "devmajor", "devminor",
          "rdevmajor", "rdevminor", "namesize", "check")
S_IFMT = 0o170000
S_IFREG = 0o100000


class FormatError(ValueError):
    """A malformed archive: says where."""


@record
class Entry:
    name: str
    mode: int
    data: bytes = b""
    uid: int = 0
    gid: int = 0
    nlink: int = 1
    mtime: int = 0
    ino: int = 0
    rdevmajor: int = 0
    rdevminor: int = 0

    @property
    def is_regular(self) -> bool:
        return self.mode & S_IFMT == S_IFREG


def _align(value: int, to: int) -> int:
    return (value + to - 1) & ~(to - 1)


def _header(entry: Entry, namesize: int) -> bytes:
    values = (entry.ino, entry.mode, entry.uid, entry.gid, entry.nlink, entry.mtime, len(entry.data),
              0, 0, entry.rdevmajor, entry.rdevminor, namesize, 0)
    return MAGIC + b"".join(b"%08X" % (v & 0xFFFF_FFFF) for v in values)


class Writer:
    """Builds an archive in memory; entries in the order written."""

    def __init__(self, align_data: bool = True):
        self.parts = []
        self.size = 0
        self.align_data = align_data

    def _put(self, data: bytes) -> None:
        self.parts.append(data)
        self.size += len(data)

    def add(self, entry: Entry) -> None:
        name = entry.name.encode("utf-8", "surrogateescape") + b"\0"
        namesize = len(name)
        if self.align_data and entry.is_regular and entry.data:
            pad = -(self.size + HEADER_SIZE + namesize) % PAGE      # data starts on a page
            if namesize + pad <= PATH_MAX:
                namesize += pad
        self._put(_header(entry, namesize))
        self._put(name + b"\0" * (namesize - len(name)))
        self._put(b"\0" * (-(HEADER_SIZE + namesize) % 4))
        self._put(entry.data)
        self._put(b"\0" * (-len(entry.data) % 4))

    def finish(self) -> bytes:
        self.add(Entry(TRAILER, 0, nlink=1))
        return b"".join(self.parts)


def read(archive: bytes):
    """Yield the entries of one or more concatenated archives (without the trailers)."""
    offset, size = 0, len(archive)
    while offset + HEADER_SIZE <= size:
        if archive[offset] == 0:                        # padding between archives
            offset += 4
            continue
        magic = archive[offset:offset + 6]
        if magic not in (MAGIC, MAGIC_CRC):
            raise FormatError(f"no newc cpio header at offset {offset} (found {magic!r}; only the "
                              "newc format, `cpio -H newc`, is read)")
        try:
            fields = dict(zip(FIELDS, (int(archive[offset + 6 + 8 * i:offset + 14 + 8 * i], 16)
                                       for i in range(len(FIELDS)))))
        except ValueError:
            raise FormatError(f"cpio header at offset {offset} has a field that is not hex digits") from None
        namesize, filesize = fields["namesize"], fields["filesize"]
        name_at = offset + HEADER_SIZE
        data_at = name_at + _align(HEADER_SIZE + namesize, 4) - HEADER_SIZE
        if namesize == 0 or data_at + filesize > size:
            raise FormatError(f"cpio entry at offset {offset} runs past the end of the archive")
        name = archive[name_at:name_at + namesize].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        offset = _align(data_at + filesize, 4)
        if name == TRAILER:
            continue
        yield Entry(name=name, mode=fields["mode"], data=archive[data_at:data_at + filesize], uid=fields["uid"],
                    gid=fields["gid"], nlink=fields["nlink"], mtime=fields["mtime"], ino=fields["ino"],
                    rdevmajor=fields["rdevmajor"], rdevminor=fields["rdevminor"])


def is_archive(data: bytes) -> bool:
    return data[:6] in (MAGIC, MAGIC_CRC)

