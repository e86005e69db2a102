"""One source for the VMM's ports and addresses on the C side too.

The firmware includes build/vmm_layout.h, which the build generates from vmm/layout.py
(vmm/layout_header.py): no firmware file may define one of its names by hand. The guest
kernel keeps its own names for the few it uses (it is built without the VMM), and the
firmware its copies of protocol constants (fw_cfg keys, PVH): every such copy must have
the value the Python side has.
"""
import re
from pathlib import Path

import pytest

from vmm import layout, layout_header, paths
from vmm.arch.x86 import pvh
from vmm.devices import fw_cfg, rtc

FIRMWARE = paths.REPO_ROOT / "firmware"
KERNEL = paths.GUEST_SOURCE / "kernel"
DEFINE = re.compile(r"^\s*#\s*define\s+([A-Z_][A-Z0-9_]*)\s+(0[xX][0-9a-fA-F]+|[0-9]+)[uUlL]*\b", re.M)

# The guest kernel's names for the VMM's ports and IRQs (guest/kernel/*.h), and their values.
KERNEL_COPIES = {
    "COM1_BASE": layout.COM1_PORT,
    "IRQ_COM1": layout.COM1_IRQ,
    "DEBUG_EXIT_PORT": layout.DEBUG_EXIT_PORT,
    "RTC_INDEX_PORT": layout.RTC_PORT + rtc.INDEX,
    "RTC_DATA_PORT": layout.RTC_PORT + rtc.DATA,
    "RTC_SECONDS": rtc.REG_SECONDS, "RTC_MINUTES": rtc.REG_MINUTES, "RTC_HOURS": rtc.REG_HOURS,
    "RTC_DAY": rtc.REG_DAY, "RTC_MONTH": rtc.REG_MONTH, "RTC_YEAR": rtc.REG_YEAR, "RTC_CENTURY": rtc.REG_CENTURY,
    "RTC_REG_A": rtc.REG_A, "RTC_REG_B": rtc.REG_B, "RTC_B_BINARY": rtc.B_BINARY, "RTC_B_24H": rtc.B_24_HOUR,
    "PIC_MASTER_CMD": layout.PIC_MASTER_PORT,
    "PIC_MASTER_DATA": layout.PIC_MASTER_PORT + 1,
    "PIC_SLAVE_CMD": layout.PIC_SLAVE_PORT,
    "PIC_SLAVE_DATA": layout.PIC_SLAVE_PORT + 1,
    "PIC_CASCADE_IRQ": layout.PIC_CASCADE_IRQ,
    "IRQ_TIMER": layout.PIT_IRQ,
    "PIT_CH0": layout.PIT_PORT,
    "PIT_CH2": layout.PIT_PORT + 2,
    "PIT_CMD": layout.PIT_PORT + 3,
    "PIT_INPUT_HZ": layout.PIT_INPUT_HZ,
    "PORT_B": layout.SYSTEM_CONTROL_PORT_B,
    "STRACE_PORT": layout.STRACE_PORT,
    "HVM_START_MAGIC": pvh.HVM_START_MAGIC,
    "XEN_ELFNOTE_PHYS32_ENTRY": pvh.XEN_ELFNOTE_PHYS32_ENTRY,
    "E820_RAM": pvh.E820_RAM,
}


def c_integer(text: str) -> int:
    """A C integer literal: hexadecimal, octal (a leading 0, as the O_ flags are) or decimal."""
    if text[:2].lower() == "0x":
        return int(text, 16)
    return int(text, 8) if len(text) > 1 and text[0] == "0" else int(text)


def defines(folder: Path, patterns=("*.h", "*.c", "*.S")) -> dict:
    """{name: (value, file)} of every `#define NAME number` in the folder's sources."""
    found = {}
    for pattern in patterns:
        for path in sorted(folder.glob(pattern)):
            for name, value in DEFINE.findall(path.read_text()):
                found[name] = (c_integer(value), path.name)
    return found


def test_the_header_defines_every_integer_of_layout_py():
    values = layout_header.constants()
    assert values["COM1_PORT"] == layout.COM1_PORT and values["FW_CFG_DMA_PORT"] == layout.FW_CFG_DMA_PORT
    assert values["BOOT_CS"] == pvh.BOOT_CS and values["PVH_INFO_START"] == layout.PVH_INFO_START
    parsed = {name: int(value, 16) for name, value in re.findall(r"#define (\w+) +(0x[0-9a-f]+)",
                                                                    layout_header.header())}
    assert parsed == values


def test_the_firmware_build_uses_the_current_header():
    built = FIRMWARE / "build" / "vmm_layout.h"
    if not built.exists():
        pytest.fail(f"{built} is missing: the firmware build (make) generates it")
    assert built.read_text() == layout_header.header()


def test_no_firmware_file_copies_a_layout_constant():
    generated = set(layout_header.constants())
    copies = {name: where for name, (_, where) in defines(FIRMWARE).items() if name in generated}
    assert not copies, f"defined by hand in firmware/ instead of coming from vmm/layout.py: {copies}"


def test_the_firmwares_protocol_constants_match_the_vmms():
    checked = 0
    for name, (value, where) in defines(FIRMWARE).items():
        python_name = name.removeprefix("FW_CFG_") if name.startswith("FW_CFG_") else None
        if python_name is not None and hasattr(fw_cfg, python_name):
            assert value == getattr(fw_cfg, python_name), f"{where}: {name}"
            checked += 1
        elif name in ("HVM_START_MAGIC", "HVM_START_INFO_VERSION", "E820_RAM", "E820_RESERVED"):
            assert value == getattr(pvh, name), f"{where}: {name}"
            checked += 1
    assert checked >= 15                    # the fw_cfg keys and DMA bits, and PVH's


def test_the_guest_kernels_copies_match_layout_py():
    kernel = defines(KERNEL, ("*.h",))
    missing = [name for name in KERNEL_COPIES if name not in kernel]
    assert not missing, f"guest/kernel no longer defines {missing}: update KERNEL_COPIES"
    wrong = {name: (kernel[name], expected) for name, expected in KERNEL_COPIES.items()
             if kernel[name][0] != expected}
    assert not wrong, f"guest/kernel values that differ from the VMM's: {wrong}"
