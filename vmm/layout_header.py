"""layout.py as a C header, for the firmware and any guest code built with the VMM:

    python3 -m vmm.layout_header > build/vmm_layout.h     (firmware/Makefile does this)

Every integer constant layout.py defines becomes a #define of the same name, and so do the
PVH boot GDT's selectors (arch/x86/pvh.py), so the C side never keeps hand copies of the
VMM's ports and addresses. Plain hex values, usable from C and from GNU as.
"""
import sys

from . import layout
from .arch.x86 import pvh

PVH_SELECTORS = ("BOOT_CS", "BOOT_DS", "BOOT_TR")


def constants() -> dict:
    """{name: value} of what the header defines, in layout.py's order."""
    values = {name: value for name, value in vars(layout).items()
              if name.isupper() and isinstance(value, int) and not isinstance(value, bool)}
    values.update((name, getattr(pvh, name)) for name in PVH_SELECTORS)
    return values


def header() -> str:
    lines = ["/* Generated from vmm/layout.py and vmm/arch/x86/pvh.py by `python3 -m vmm.layout_header`:",
             " * do not edit; change the Python side and rebuild. */",
             "#ifndef VMM_LAYOUT_H", "#define VMM_LAYOUT_H", ""]
    lines += [f"#define {name:<28} {value:#x}" for name, value in constants().items()]
    lines += ["", "#endif", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(header())
