"""The C library, once: its handle (errno kept per call) and typed prototypes.

CDLL releases the GIL during each call, which lets other threads run while one blocks (in
KVM_RUN, in a timerfd read).
"""
import ctypes
import os

libc = ctypes.CDLL("libc.so.6", use_errno=True)
get_errno = ctypes.get_errno


def prototype(name: str, restype, *argtypes):
    """libc's `name` with its argument and result types set. Each call gives a function
    object of its own (libc[name], not the cached libc.name), so two callers can type the
    same symbol (syscall, say) differently."""
    function = libc[name]
    function.argtypes = argtypes
    function.restype = restype
    return function


def check(result: int, what: str, path=None) -> int:
    """`result` if it is not negative, else OSError(errno, "what: strerror", path) like the os module."""
    if result < 0:
        err = get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}", path)
    return result
