"""System-call, errno and signal names, from guest/abi/linux_abi.h: the one header the guest
kernel and its libc are built with, generated from Linux's UAPI headers."""
import functools
import re

from .. import paths

HEADER = paths.GUEST_SOURCE / "abi" / "linux_abi.h"


@functools.lru_cache(maxsize=None)
def _defines():
    names = {"SYS": {}, "E": {}, "SIG": {}}
    for name, value in re.findall(r"^#define\s+(\w+)\s+(\d+)\s*$", HEADER.read_text(), re.M):
        if name.startswith("SYS_"):
            names["SYS"][int(value)] = name[4:]
        elif name.startswith("SIG"):
            names["SIG"].setdefault(int(value), name)
        elif name.startswith("E"):
            names["E"].setdefault(int(value), name)
    return names


def syscall_name(number: int) -> str:
    return _defines()["SYS"].get(number, f"syscall_{number:#x}")


def errno_name(number: int) -> str:
    return _defines()["E"].get(number, str(number))


def signal_name(number: int) -> str:
    if 32 <= number <= 64:
        return f"SIGRT_{number - 32}"
    return _defines()["SIG"].get(number, str(number))
