"""Disk-image locks as QEMU takes them: open-file-description (OFD) byte-range locks, through
ctypes (fcntl(2) from libc; the `fcntl` module is not used), and who holds one.

QEMU's scheme (block/file-posix.c, raw_apply_lock_bytes and raw_check_lock_bytes), which
this follows so that pyvmm and QEMU see each other's images as busy:
  - permission bit i that an opener uses:          a shared lock on byte 100 + i
  - permission bit i that it does not let others have: a shared lock on byte 200 + i
  - before using bit i, nobody may hold byte 200 + i; before refusing bit i to others,
    nobody may hold byte 100 + i (tested with F_OFD_GETLK for an exclusive lock).
Bits (include/block/block-common.h): 0 consistent read, 1 write. A reader uses bit 0 and
refuses bit 1 to others (the image must not change under it); a writer uses bits 0 and 1
and refuses bit 1. So readers share an image, and a writer excludes everyone.

OFD locks belong to the open file description: they conflict between two opens of the same
file even in one process, and go away when the descriptor is closed (or the process dies).
"""
import ctypes
import os

from .libc import check, prototype

F_OFD_GETLK, F_OFD_SETLK = 36, 37        # <bits/fcntl-linux.h>
F_RDLCK, F_WRLCK, F_UNLCK = 0, 1, 2
SEEK_SET = 0
PERM_BASE, SHARED_BASE = 100, 200        # QEMU's RAW_LOCK_PERM_BASE, RAW_LOCK_SHARED_BASE
CONSISTENT_READ, WRITE = 0, 1            # bit numbers of BLK_PERM_CONSISTENT_READ, BLK_PERM_WRITE
PERMISSION_NAMES = {CONSISTENT_READ: "consistent read", WRITE: "write"}


class _Flock(ctypes.Structure):
    """struct flock (x86-64): l_type, l_whence, l_start, l_len, l_pid."""
    _fields_ = [("l_type", ctypes.c_short), ("l_whence", ctypes.c_short), ("l_start", ctypes.c_int64),
                ("l_len", ctypes.c_int64), ("l_pid", ctypes.c_int)]


# fcntl(2) is variadic; on x86-64 a pointer passes as a fixed third argument would.
_fcntl = prototype("fcntl", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p)


class Conflict(Exception):
    """Another open of the image holds a lock byte we need free: `permission` names what
    we could not get ("write", or "shared write": others already write)."""

    def __init__(self, permission: str):
        super().__init__(permission)
        self.permission = permission


def _lock_byte(fd: int, offset: int) -> None:
    request = _Flock(F_RDLCK, SEEK_SET, offset, 1, 0)
    check(_fcntl(fd, F_OFD_SETLK, ctypes.addressof(request)), "fcntl(F_OFD_SETLK)")


def _held_by_others(fd: int, offset: int) -> bool:
    probe = _Flock(F_WRLCK, SEEK_SET, offset, 1, 0)
    check(_fcntl(fd, F_OFD_GETLK, ctypes.addressof(probe)), "fcntl(F_OFD_GETLK)")
    return probe.l_type != F_UNLCK


def lock_image(fd: int, write: bool) -> None:
    """Take QEMU's locks for a reader (write=False) or a writer on the open image `fd`, then
    check nobody else conflicts; raises Conflict (the caller closes `fd`, which drops ours)
    or OSError (a file system without locks)."""
    used = (CONSISTENT_READ, WRITE) if write else (CONSISTENT_READ,)
    refused = (WRITE,)
    for bit in used:
        _lock_byte(fd, PERM_BASE + bit)
    for bit in refused:
        _lock_byte(fd, SHARED_BASE + bit)
    for bit in used:                    # somebody refuses us a permission we use
        if _held_by_others(fd, SHARED_BASE + bit):
            raise Conflict(PERMISSION_NAMES[bit])
    for bit in refused:                 # somebody uses a permission we refuse
        if _held_by_others(fd, PERM_BASE + bit):
            raise Conflict(f"shared {PERMISSION_NAMES[bit]}")


def lock_holders(fd: int) -> list:
    """[(pid, command line)] of the processes that hold a lock on the file open as `fd`
    (not counting `fd` itself), found through /proc/PID/fdinfo: OFD locks show no owner in
    /proc/locks. [] if none can be seen."""
    st = os.fstat(fd)
    own = (str(os.getpid()), str(fd))
    inode = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    holders = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        folder = f"/proc/{entry}/fdinfo"
        try:
            fds = os.listdir(folder)
        except OSError:
            continue
        for other in fds:
            if (entry, other) == own:
                continue
            try:
                with open(f"{folder}/{other}") as info:
                    text = info.read()
            except OSError:
                continue
            if any(line.startswith("lock:") and inode in line.split() for line in text.splitlines()):
                holders.append((int(entry), _command_line(int(entry))))
                break
    return holders


def _command_line(pid: int) -> str:
    """The first words of a process's command line, its program without the folder."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            words = [word.decode(errors="replace") for word in file.read().rstrip(b"\0").split(b"\0")]
    except OSError:
        return "?"
    words[0] = os.path.basename(words[0])
    return " ".join(words[:4]) + (" ..." if len(words) > 4 else "")
