"""ioctl(2) through ctypes: request-number encoding and the one call that reports errors.

The request numbers follow <asm-generic/ioctl.h>: 2 direction bits, 14 size bits, 8 type
bits, 8 number bits. KVM's type is KVMIO = 0xAE (linux/kvm.h). The size is always
`ctypes.sizeof` of the struct the kernel copies, so a struct that drifts from the ABI also
changes the request number and the kernel rejects it (ENOTTY) instead of corrupting memory.
"""
import ctypes
import errno
import os

from ..errors import VmmError
from ..host.libc import get_errno, prototype

# <asm-generic/ioctl.h>
_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_SIZEBITS = 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE = 0
_IOC_WRITE = 1          # userspace -> kernel
_IOC_READ = 2           # kernel -> userspace

KVMIO = 0xAE


def _IOC(direction: int, type_: int, nr: int, size: int) -> int:
    if size >= 1 << _IOC_SIZEBITS:
        raise ValueError(f"ioctl argument of {size} bytes does not fit the size field")
    return (direction << _IOC_DIRSHIFT) | (type_ << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)


def _IO(type_: int, nr: int) -> int:
    return _IOC(_IOC_NONE, type_, nr, 0)


def _IOR(type_: int, nr: int, ctype) -> int:
    return _IOC(_IOC_READ, type_, nr, ctypes.sizeof(ctype))


def _IOW(type_: int, nr: int, ctype) -> int:
    return _IOC(_IOC_WRITE, type_, nr, ctypes.sizeof(ctype))


def _IOWR(type_: int, nr: int, ctype) -> int:
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, ctypes.sizeof(ctype))


class KvmError(VmmError):
    """A KVM ioctl failed; the message names the ioctl and the errno."""

    def __init__(self, what: str, err: int):
        self.errno = err
        name = errno.errorcode.get(err, f"errno {err}")
        super().__init__(f"{what} failed: {name} ({os.strerror(err)})")


# int ioctl(int fd, unsigned long request, ...): on x86-64 the variadic third argument is
# passed like a fixed one, so a fixed prototype is safe. The call releases the GIL, which
# lets other threads (the timeout kicker) run while KVM_RUN blocks.
raw_ioctl = prototype("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)


def ioctl(fd: int, request: int, arg=None, name: str = "ioctl") -> int:
    """ioctl(fd, request, arg) -> the non-negative result, or KvmError naming `name`.

    `arg` is an int (passed by value) or a ctypes object (passed by reference).
    """
    if arg is None:
        arg = 0
    elif not isinstance(arg, int):
        arg = ctypes.addressof(arg)
    result = raw_ioctl(fd, request, arg)
    if result < 0:
        raise KvmError(name, get_errno())
    return result


class FdOwner:
    """Owns one KVM file descriptor: close_fd() closes it once; a context manager closes."""
    fd = -1

    def close_fd(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        self.close_fd()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
