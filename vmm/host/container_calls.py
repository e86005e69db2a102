"""The Linux system calls a container launcher makes (vmm/container), x86-64, glibc.

Only integer and string arguments cross this boundary. Every wrapper raises OSError(errno,
strerror, path) on failure, like the os module; callers turn those into one-line errors.
Numbers are from <linux/sched.h>, <linux/mount.h> and the x86-64 syscall table.
"""
import ctypes
import os

from .libc import check, prototype

# <linux/sched.h>: namespace flags for unshare(2), setns(2) and clone(2)
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <linux/mount.h>: mount(2) flags and umount2(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2

SYS_pivot_root = 155            # x86-64; glibc has no wrapper

_unshare = prototype("unshare", ctypes.c_int, ctypes.c_int)
_setns = prototype("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_mount = prototype("mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                   ctypes.c_char_p)
_umount2 = prototype("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
_sethostname = prototype("sethostname", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
# syscall(2) is variadic; on x86-64 integer and pointer arguments pass the same way as for a
# fixed prototype, so a fixed one is safe.
_syscall2 = prototype("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p)


def _bytes(path):
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    check(_unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    check(_setns(fd, nstype), "setns")


def mount(source, target, fstype, flags: int, data=None) -> None:
    check(_mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)), "mount", target)


def umount2(target, flags: int) -> None:
    check(_umount2(_bytes(target), flags), "umount2", target)


def pivot_root(new_root, put_old) -> None:
    check(_syscall2(SYS_pivot_root, _bytes(new_root), _bytes(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    check(_sethostname(raw, len(raw)), "sethostname")
