"""The boot module for a root file system: a host directory packed as a newc archive, or a
.cpio / .cpio.gz file unpacked (gzip through the standard library, here on the host, where
it is cheap; the guest would decompress in emulated ring 0) and packed again with its files'
data page-aligned (newc.Writer). A single static ELF given as --initrd stays what it is.

The directory is walked depth-first, each directory in the order the host's file system
lists it (os.scandir, unsorted), parents before children: the guest's getdents then lists a
directory as the host would, so `find` prints the same order in the VM and in a container.
Hard links keep one inode: the first name carries the data.
"""
import os
import stat
import zlib

from ..errors import ImageError, InputError
from . import newc

ARCHIVE, ELF = "archive", "elf"
GZIP_MAGIC = b"\x1f\x8b"
ELF_MAGIC = b"\x7fELF"
# Where a program name is looked up: the tiny kernel's INIT_PATH (guest/kernel/layout.h), the
# container launcher's PATH (container/launcher.py), so the three agree.
SEARCH_PATH = ("/bin", "/usr/bin", "/sbin", "/usr/sbin")
DEFAULT_PROGRAMS = ("/init", "/bin/sh")     # without a program: the kernel tries these, in order
MAX_SYMLINKS = 40


class _Packer:
    """Entries for host files: inode numbers in packing order, hard links sharing one."""

    def __init__(self):
        self.writer = newc.Writer()
        self.next_ino = 1
        self.links = {}                 # (st_dev, st_ino) -> the inode number given

    def add(self, path: str, name: str, st) -> None:
        entry = newc.Entry(name=name, mode=st.st_mode, uid=st.st_uid, gid=st.st_gid, nlink=st.st_nlink,
                           mtime=int(st.st_mtime), ino=self.next_ino)
        kind = stat.S_IFMT(st.st_mode)
        if kind == stat.S_IFREG and st.st_nlink > 1 and (st.st_dev, st.st_ino) in self.links:
            entry.ino = self.links[(st.st_dev, st.st_ino)]     # another name of a packed file
        elif kind == stat.S_IFREG:
            self.links[(st.st_dev, st.st_ino)] = entry.ino
            try:
                with open(path, "rb") as f:
                    entry.data = f.read()
            except OSError as error:
                raise InputError(f"cannot read {path} for the root file system: {error.strerror}") from None
        else:
            entry.nlink = 2 if kind == stat.S_IFDIR else 1
            if kind == stat.S_IFLNK:
                entry.data = os.fsencode(os.readlink(path))
            elif kind in (stat.S_IFCHR, stat.S_IFBLK):
                entry.rdevmajor, entry.rdevminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        self.next_ino += 1
        self.writer.add(entry)


def pack_directory(root) -> bytes:
    """DIRECTORY as a newc archive whose regular files' data is page-aligned."""
    root = os.fspath(root)
    try:
        top = os.stat(root)
    except FileNotFoundError:
        raise InputError(f"root file system {root}: no such directory") from None
    except OSError as error:
        raise InputError(f"root file system {root}: {error.strerror}") from None
    if not stat.S_ISDIR(top.st_mode):
        raise InputError(f"root file system {root}: not a directory")
    packer = _Packer()
    packer.add(root, ".", top)
    pending = [(root, "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            children = list(os.scandir(directory))
        except OSError as error:
            raise InputError(f"cannot list {directory} for the root file system: {error.strerror}") from None
        subdirectories = []
        for child in children:
            st = child.stat(follow_symlinks=False)
            packer.add(child.path, prefix + child.name, st)
            if stat.S_ISDIR(st.st_mode):
                subdirectories.append((child.path, prefix + child.name + "/"))
        pending.extend(reversed(subdirectories))    # depth-first, in listing order
    return packer.writer.finish()


def repack(archive: bytes, origin: str) -> bytes:
    """A newc archive (or several, concatenated) written again with its data page-aligned."""
    writer = newc.Writer()
    try:
        for entry in newc.read(archive):
            writer.add(entry)
    except newc.FormatError as error:
        raise ImageError(f"initrd {origin}: {error}") from None
    return writer.finish()


def load_initrd(data: bytes, origin: str):
    """(ARCHIVE, archive bytes) for a .cpio or .cpio.gz file's contents, (ELF, bytes) for a
    program; origin names the file in errors."""
    if data[:2] == GZIP_MAGIC:
        import gzip                     # here: most runs boot a plain program, and imports cost start-up
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as error:
            raise ImageError(f"initrd {origin} is not a valid gzip file: {error}") from None
    if newc.is_archive(data):
        return ARCHIVE, repack(data, origin)
    if data[:4] == ELF_MAGIC:
        return ELF, data
    raise ImageError(f"initrd {origin} is neither a static ELF program nor a newc cpio archive "
                     "(optionally gzip-compressed)")


def is_archive(module: bytes) -> bool:
    return newc.is_archive(module)


def _resolve(root: str, path: str) -> str | None:
    """path (absolute, inside root) with its symbolic links followed inside root, as the
    guest will see it; the host path of a regular file, or None."""
    parts, links, current = [p for p in path.split("/") if p], 0, []
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            current = current[:-1]
            continue
        host = os.path.join(root, *current, part)
        if os.path.islink(host):
            links += 1
            if links > MAX_SYMLINKS:
                return None
            target = os.readlink(host)
            if target.startswith("/"):
                current = []
            parts = [p for p in target.split("/") if p] + parts
            continue
        current.append(part)
    host = os.path.join(root, *current)
    return host if os.path.isfile(host) else None


def find_program(root, name: str) -> str | None:
    """Where the guest will find `name` in the root file system DIRECTORY (an absolute or
    relative path, or a name looked up in SEARCH_PATH), or None; no name: the default."""
    root = os.fspath(root)
    if not name:
        candidates = DEFAULT_PROGRAMS
    elif "/" in name:
        candidates = ("/" + name.lstrip("/"),)
    else:
        candidates = tuple(f"{d}/{name}" for d in SEARCH_PATH)
    for candidate in candidates:
        if _resolve(root, candidate):
            return candidate
    return None
