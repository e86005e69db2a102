"""Opening a path inside a directory without ever leaving it: openat2(2) with RESOLVE_BENEATH
(Linux 5.6), through ctypes.

A symbolic link inside the tree is followed only while it stays inside it: `bin -> usr/bin`
works, `bin -> /host/dir` or `tmp -> ../..` fails with EXDEV, and "magic" links
(/proc/PID/fd/N) are never followed. On an older kernel (ENOSYS), the same walk is done one
component at a time with O_NOFOLLOW, which refuses every symbolic link (ELOOP or ENOTDIR).
Numbers are from <linux/openat2.h> and the x86-64 system-call table.
"""
import ctypes
import errno
import os

from .libc import check, prototype

SYS_openat2 = 437
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_BENEATH = 0x08


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64), ("resolve", ctypes.c_uint64)]


# syscall(2) is variadic; on x86-64 integer and pointer arguments pass as for a fixed prototype.
_syscall = prototype("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p,
                     ctypes.c_size_t)
_have_openat2 = True


def open_beneath(root_fd: int, path: str, flags: int, mode: int = 0) -> int:
    """A file descriptor for `path` (relative) resolved inside the directory `root_fd`, or
    OSError: EXDEV when it would leave the tree, ELOOP for a magic link (and, on kernels
    without openat2, for any symbolic link)."""
    global _have_openat2
    flags |= os.O_CLOEXEC
    if _have_openat2:
        how = _OpenHow(flags, mode, RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)
        result = _syscall(SYS_openat2, root_fd, os.fsencode(path), ctypes.byref(how), ctypes.sizeof(how))
        if result >= 0 or ctypes.get_errno() != errno.ENOSYS:
            return check(result, "openat2", path)
        _have_openat2 = False
    return _open_without_links(root_fd, path, flags, mode)


def _open_without_links(root_fd: int, path: str, flags: int, mode: int) -> int:
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise OSError(errno.EXDEV, f"openat2: {os.strerror(errno.EXDEV)}", path)
    fd = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = next_fd
        return os.open(parts[-1], flags | os.O_NOFOLLOW, mode, dir_fd=fd)
    finally:
        os.close(fd)
