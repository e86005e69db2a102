"""ctypes bindings of the Linux system calls the container launcher needs (x86-64, glibc).

Only integer and string arguments cross this boundary. Every wrapper raises OSError(errno,
strerror, path) on failure, like the os module; callers turn those into one-line errors.
Numbers are from <linux/sched.h>, <linux/mount.h>, <linux/prctl.h> and the x86-64 syscall table.
"""
import ctypes
import os

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

PR_SET_PDEATHSIG = 1            # <linux/prctl.h>
SYS_pivot_root = 155            # x86-64; glibc has no wrapper

_libc = ctypes.CDLL("libc.so.6", use_errno=True)


def _prototype(name, *argtypes):
    function = getattr(_libc, name)
    function.argtypes = argtypes
    function.restype = ctypes.c_int
    return function


_unshare = _prototype("unshare", ctypes.c_int)
_setns = _prototype("setns", ctypes.c_int, ctypes.c_int)
_mount = _prototype("mount", ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p)
_umount2 = _prototype("umount2", ctypes.c_char_p, ctypes.c_int)
_sethostname = _prototype("sethostname", ctypes.c_char_p, ctypes.c_size_t)
# prctl(2) and syscall(2) are variadic; on x86-64 integer and pointer arguments pass the same
# way as for a fixed prototype, so a fixed one is safe.
_prctl = _prototype("prctl", ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_syscall2 = _libc.syscall
_syscall2.argtypes = (ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p)
_syscall2.restype = ctypes.c_long


def _check(result, what, path=None):
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)


def _bytes(path):
    return None if path is None else os.fsencode(path)


def unshare(flags: int) -> None:
    _check(_unshare(flags), "unshare")


def setns(fd: int, nstype: int) -> None:
    _check(_setns(fd, nstype), "setns")


def mount(source, target, fstype, flags: int, data=None) -> None:
    _check(_mount(_bytes(source), _bytes(target), _bytes(fstype), flags, _bytes(data)), "mount", target)


def umount2(target, flags: int) -> None:
    _check(_umount2(_bytes(target), flags), "umount2", target)


def pivot_root(new_root, put_old) -> None:
    _check(_syscall2(SYS_pivot_root, _bytes(new_root), _bytes(put_old)), "pivot_root", new_root)


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_sethostname(raw, len(raw)), "sethostname")


def set_parent_death_signal(signum: int) -> None:
    """The kernel sends `signum` to this process when its parent thread exits (kept across execve)."""
    _check(_prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
