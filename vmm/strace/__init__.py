"""--strace: the guest kernel reports each system call through a port (guest/kernel/syscall/
strace.c); this package reads the reports and prints the calls as strace does.

abi.py      the Linux numbers, read from the header the kernel and its libc share
decode.py   each call's arguments and result, formatted like strace
device.py   the port device: reads the kernel's record and the user memory it points into
"""
from .device import StraceDevice

__all__ = ["StraceDevice"]
