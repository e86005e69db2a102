"""Pseudoterminal ioctls the os module lacks: unlock and number a pty master, the window size,
the controlling terminal. Numbers from <asm-generic/ioctls.h>."""
import ctypes
import struct

from .libc import check, prototype

TIOCSCTTY = 0x540E
TIOCSWINSZ = 0x5414
TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431

_ioctl = prototype("ioctl", ctypes.c_int, ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p)


def unlock(master: int) -> None:
    """unlockpt(3): let the slave end be opened."""
    cell = ctypes.c_int(0)
    check(_ioctl(master, TIOCSPTLCK, ctypes.addressof(cell)), "ioctl(TIOCSPTLCK)")


def number(master: int) -> int:
    """The N of /dev/pts/N for a pty master (ptsname(3))."""
    cell = ctypes.c_int(0)
    check(_ioctl(master, TIOCGPTN, ctypes.addressof(cell)), "ioctl(TIOCGPTN)")
    return cell.value


def set_window_size(fd: int, rows: int, columns: int) -> None:
    raw = ctypes.create_string_buffer(struct.pack("HHHH", rows, columns, 0, 0), 8)
    check(_ioctl(fd, TIOCSWINSZ, ctypes.addressof(raw)), "ioctl(TIOCSWINSZ)")


def make_controlling(fd: int) -> None:
    """The terminal `fd` becomes this session leader's controlling terminal."""
    check(_ioctl(fd, TIOCSCTTY, 0), "ioctl(TIOCSCTTY)")
