"""This process and others: the C heap's free memory, which pages of a mapping are resident,
a child's death signal, whether a process lives, and the other prctl(2) settings the OCI
runtime makes (capabilities' bounding and ambient sets, no_new_privs, keep-caps across setuid,
child subreaper). Numbers from <linux/prctl.h>."""
import ctypes
import os

from .libc import check, libc, prototype

PR_SET_PDEATHSIG = 1            # <linux/prctl.h>
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

# prctl(2) is variadic; on x86-64 integer arguments pass the same way as for a fixed
# prototype, so a fixed one is safe.
_prctl = prototype("prctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong,
                   ctypes.c_ulong)


def malloc_trim() -> None:
    """Hand the C heap's free memory back to the kernel (glibc; elsewhere nothing), so that an
    RSS measured next is not inflated by memory already freed."""
    trim = getattr(libc, "malloc_trim", None)
    if trim is not None:
        trim(0)


_mincore = prototype("mincore", ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


def resident_pages(address: int, length: int, page_size: int) -> int:
    """How many pages of [address, address+length) (page-aligned, mapped) are in memory:
    mincore(2), one byte per page whose bit 0 says so."""
    pages = (length + page_size - 1) // page_size
    vector = (ctypes.c_ubyte * pages)()
    check(_mincore(address, length, vector), "mincore")
    return sum(byte & 1 for byte in bytes(vector))


def set_parent_death_signal(signum: int) -> None:
    """The kernel sends `signum` to this process when its parent thread exits (kept across execve)."""
    check(_prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0), "prctl(PR_SET_PDEATHSIG)")


def alive(pid: int) -> bool:
    """Whether process `pid` exists (as far as this process can tell: another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(_prctl(option, arg2, arg3, arg4, arg5), f"prctl({option})")
