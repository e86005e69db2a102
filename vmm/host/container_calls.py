"""The Linux system calls a container launcher and the OCI runtime make (vmm/container,
vmm/oci), x86-64, glibc.

Only integers, strings and small structures cross this boundary. Every wrapper raises
OSError(errno, strerror, path) on failure, like the os module; callers turn those into one-line
errors. Numbers are from <linux/sched.h>, <linux/mount.h>, <linux/capability.h> and the x86-64
syscall table.
"""
import ctypes
import os

from .libc import check, prototype

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

# x86-64 system-call numbers for calls glibc 2.36 has no wrapper for
SYS_capget = 125
SYS_capset = 126
SYS_pivot_root = 155
SYS_mount_setattr = 442
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

_unshare = prototype("unshare", ctypes.c_int, ctypes.c_int)
_setns = prototype("setns", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_mount = prototype("mount", ctypes.c_int, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong,
                   ctypes.c_char_p)
_umount2 = prototype("umount2", ctypes.c_int, ctypes.c_char_p, ctypes.c_int)
_sethostname = prototype("sethostname", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
# syscall(2) is variadic; on x86-64 integer and pointer arguments pass the same way as for a
# fixed prototype, so a fixed one is safe.
_syscall2 = prototype("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_char_p, ctypes.c_char_p)
_setdomainname = prototype("setdomainname", ctypes.c_int, ctypes.c_char_p, ctypes.c_size_t)
_syscall_pointers = prototype("syscall", ctypes.c_long, ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_long,
                              ctypes.c_void_p, ctypes.c_size_t)


class _MountAttr(ctypes.Structure):
    """struct mount_attr (<linux/mount.h>), MOUNT_ATTR_SIZE_VER0."""
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


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


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(_setdomainname(raw, len(raw)), "setdomainname")


def mount_setattr(path, flags: int, attr_set: int, attr_clr: int, propagation: int = 0) -> None:
    """mount_setattr(AT_FDCWD, path, flags, &attr): change a mount (a tree, with AT_RECURSIVE)."""
    attr = _MountAttr(attr_set, attr_clr, propagation, 0)
    raw = ctypes.create_string_buffer(os.fsencode(path))
    check(_syscall_pointers(SYS_mount_setattr, AT_FDCWD, ctypes.addressof(raw), flags, ctypes.addressof(attr),
                            ctypes.sizeof(attr)), "mount_setattr", path)


def capget(pid: int = 0) -> tuple[int, int, int]:
    """(effective, permitted, inheritable) capability masks (64 bits each) of a process (0: this one)."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, pid), (_CapData * 2)()
    check(_syscall_pointers(SYS_capget, ctypes.addressof(header), ctypes.addressof(data), 0, None, 0), "capget")
    return tuple(getattr(data[0], kind) | getattr(data[1], kind) << 32 for kind in ("effective", "permitted",
                                                                                     "inheritable"))


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set this thread's three capability masks (64 bits each)."""
    header, data = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0), (_CapData * 2)()
    for word in (0, 1):
        data[word].effective = effective >> (32 * word) & 0xFFFFFFFF
        data[word].permitted = permitted >> (32 * word) & 0xFFFFFFFF
        data[word].inheritable = inheritable >> (32 * word) & 0xFFFFFFFF
    check(_syscall_pointers(SYS_capset, ctypes.addressof(header), ctypes.addressof(data), 0, None, 0), "capset")
