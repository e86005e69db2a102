"""ctypes bindings of the Linux system calls the container launcher and the OCI runtime need
(x86-64, glibc).

Only integers, strings and small structures cross this boundary. Every wrapper raises
OSError(errno, strerror, path) on failure, like the os module; callers turn those into one-line
errors. Numbers are from <linux/sched.h>, <linux/mount.h>, <linux/prctl.h>, <asm/ioctls.h> and
the x86-64 system-call table.
"""
import ctypes
import os

# <linux/sched.h>: namespace flags for unshare(2), setns(2) and clone(2)
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# <linux/mount.h>: mount(2) flags and umount2(2) flags
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_I_VERSION = 0x800000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000
MNT_DETACH = 0x2

# mount_setattr(2) (Linux 5.12): attributes applied to a whole mount tree at once
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_NOEXEC = 0x8
MOUNT_ATTR_RELATIME = 0x0
MOUNT_ATTR_NOATIME = 0x10
MOUNT_ATTR_STRICTATIME = 0x20
MOUNT_ATTR__ATIME = 0x70
MOUNT_ATTR_NODIRATIME = 0x80
MOUNT_ATTR_NOSYMFOLLOW = 0x200000
AT_RECURSIVE = 0x8000
AT_FDCWD = -100

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# x86-64 system-call numbers for calls glibc 2.36 has no wrapper for
SYS_capget = 125
SYS_capset = 126
SYS_pivot_root = 155
SYS_mount_setattr = 442

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
_setdomainname = _prototype("setdomainname", ctypes.c_char_p, ctypes.c_size_t)
_setgroups = _prototype("setgroups", ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint))
_ioctl = _prototype("ioctl", ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)
# prctl(2) and syscall(2) are variadic; on x86-64 integer and pointer arguments pass the same
# way as for a fixed prototype, so a fixed one is safe.
_prctl = _prototype("prctl", ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong)
_syscall2 = _libc.syscall
_syscall2.argtypes = (ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p)
_syscall2.restype = ctypes.c_long
# A second handle on the same variadic function, with the pointer prototype the cap* and
# mount_setattr calls need (a ctypes function object carries one prototype).
_syscall_ptr = ctypes.CDLL("libc.so.6", use_errno=True).syscall
_syscall_ptr.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_long, ctypes.c_void_p, ctypes.c_size_t)
_syscall_ptr.restype = ctypes.c_long


class MountAttr(ctypes.Structure):
    """struct mount_attr (<linux/mount.h>), MOUNT_ATTR_SIZE_VER0."""
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


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


def setdomainname(name: str) -> None:
    raw = name.encode()
    _check(_setdomainname(raw, len(raw)), "setdomainname")


def setgroups(gids) -> None:
    """setgroups(2) for this thread only (os.setgroups would do the same; kept for symmetry)."""
    array = (ctypes.c_uint * max(1, len(gids)))(*gids)
    _check(_setgroups(len(gids), array), "setgroups")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    result = _prctl(option, arg2, arg3, arg4, arg5)
    _check(result, f"prctl({option})")
    return result


def ioctl_int(fd: int, request: int, value: int = 0) -> int:
    """ioctl(fd, request, &int): returns the int after the call (for requests that fill it in)."""
    cell = ctypes.c_int(value)
    _check(_ioctl(fd, request, ctypes.addressof(cell)), f"ioctl({request:#x})")
    return cell.value


def ioctl_bytes(fd: int, request: int, buffer: bytes) -> None:
    """ioctl(fd, request, buffer) with a structure given as bytes (TIOCSWINSZ)."""
    raw = ctypes.create_string_buffer(buffer, len(buffer))
    _check(_ioctl(fd, request, ctypes.addressof(raw)), f"ioctl({request:#x})")


def ioctl_none(fd: int, request: int, arg: int = 0) -> None:
    """ioctl(fd, request, arg) with an integer argument passed by value (TIOCSCTTY)."""
    _check(_ioctl(fd, request, arg), f"ioctl({request:#x})")


def capget(header: ctypes.Array, data: ctypes.Array) -> None:
    _check(_syscall_ptr(SYS_capget, ctypes.addressof(header), ctypes.addressof(data), 0, None, 0), "capget")


def capset(header: ctypes.Array, data: ctypes.Array) -> None:
    _check(_syscall_ptr(SYS_capset, ctypes.addressof(header), ctypes.addressof(data), 0, None, 0), "capset")


def mount_setattr(path, flags: int, attr_set: int, attr_clr: int, propagation: int = 0) -> None:
    """mount_setattr(AT_FDCWD, path, flags, &attr): change a mount (tree, with AT_RECURSIVE)."""
    attr = MountAttr(attr_set, attr_clr, propagation, 0)
    raw = ctypes.create_string_buffer(os.fsencode(path))
    result = _syscall_ptr(SYS_mount_setattr, AT_FDCWD, ctypes.addressof(raw), flags, ctypes.addressof(attr),
                          ctypes.sizeof(attr))
    _check(result, "mount_setattr", path)


def set_parent_death_signal(signum: int) -> None:
    """The kernel sends `signum` to this process when its parent thread exits (kept across execve)."""
    _check(_prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")
