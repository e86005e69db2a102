"""The ELF/PVH loader on good and malformed images."""
import struct

import pytest

from elf_builder import elf32, elf64, pvh_note
from vmm import layout
from vmm.arch.x86 import pvh
from vmm.errors import ImageError, UsageError
from vmm.loader.elf import ElfImage
from vmm.loader.pvh import load_pvh
from vmm.memory import GuestMemory

MEM = 8 << 20
CODE = b"\xf4" * 16


def good_kernel(**kw):
    return elf64([(0x100000, CODE, 0x2000)], notes=pvh_note(0x100004), **kw)


def test_pvh_layout_in_memory():
    with GuestMemory(MEM) as mem:
        module = b"\x7fELF" + b"P" * 5000
        state = load_pvh(mem, ElfImage(good_kernel()), module, "console=ttyS0 -- a b")
        assert state.rip == 0x100004 and state.regs["rbx"] == layout.PVH_INFO_START
        assert state.cr0 & 1 and state.cs.db == 1 and state.cs.limit == 0xFFFFFFFF
        assert mem.read(0x100000, 16) == CODE
        assert mem.read(0x100010, 0x2000 - 16) == bytes(0x2000 - 16)     # BSS zeroed
        info = pvh.START_INFO.unpack(mem.read(layout.PVH_INFO_START, pvh.START_INFO.size))
        magic, version, _, nr_modules, modlist, cmdline, _, memmap, memmap_entries, _ = info
        assert (magic, version, nr_modules) == (pvh.HVM_START_MAGIC, 1, 1)
        assert mem.read(cmdline, 21) == b"console=ttyS0 -- a b\0"
        paddr, size, _, _ = pvh.MODLIST_ENTRY.unpack(mem.read(modlist, 32))
        assert size == len(module) and paddr % layout.PAGE_SIZE == 0 and paddr + size <= MEM
        assert mem.read(paddr, size) == module
        entries = [pvh.MEMMAP_ENTRY.unpack(mem.read(memmap + 24 * i, 24)) for i in range(memmap_entries)]
        assert entries[-1][:3] == (layout.HIGH_MEMORY_START, MEM - layout.HIGH_MEMORY_START, pvh.E820_RAM)
        gdt = mem.read(layout.BOOT_GDT_ADDR, 32)
        assert struct.unpack("<4Q", gdt)[1] == pvh.BOOT_GDT[1]


def test_elf32_kernels_load_too():
    image = ElfImage(elf32([(0x100000, CODE, 16)], notes=pvh_note(0x100000)))
    with GuestMemory(MEM) as mem:
        assert load_pvh(mem, image, None, "").rip == 0x100000


@pytest.mark.parametrize("data,message", [
    (b"", "not an ELF"),
    (b"MZ\x90\x00" + bytes(100), "not an ELF"),
    (good_kernel()[:40], "truncated"),
    (good_kernel()[:100], "truncated"),
    (good_kernel(machine=40), "machine 40"),           # ARM
    (good_kernel(elf_class=9), "class"),
    (elf64([(0x100000, CODE, 4)]), "memory size is smaller"),
    (elf64([(0x100000, CODE, 0x2000), (0x101000, CODE, 16)]), "overlapping"),
])
def test_malformed_images_are_refused_with_one_line(data, message):
    with pytest.raises(ImageError, match=message) as info:
        ElfImage(data)
    assert "\n" not in str(info.value)


def test_no_pvh_note():
    with GuestMemory(MEM) as mem, pytest.raises(ImageError, match="PVH"):
        load_pvh(mem, ElfImage(elf64([(0x100000, CODE, 16)])), None, "")


def test_segment_outside_ram():
    image = ElfImage(elf64([(MEM - 8, CODE, 16)], notes=pvh_note(0x100000)))
    with GuestMemory(MEM) as mem, pytest.raises(UsageError, match="too small"):
        load_pvh(mem, image, None, "")


def test_segment_over_a_boot_structure_is_refused_by_name():
    image = ElfImage(elf64([(0x6000, CODE, 16)], notes=pvh_note(0x6000)))
    with GuestMemory(MEM) as mem, pytest.raises(ImageError, match="overlaps hvm_start_info at 0x6000"):
        load_pvh(mem, image, None, "")
    image = ElfImage(elf64([(0xE8000, CODE, 16)], notes=pvh_note(0xE8000)))
    with GuestMemory(MEM) as mem, pytest.raises(ImageError, match="overlaps the ACPI tables"):
        load_pvh(mem, image, None, "")


def test_elf_headers_page_below_one_mebibyte_loads_as_qemu_allows():
    """A kernel linked at 1 MiB by plain ld: its ELF headers sit in a LOAD segment at 0xff000,
    in the legacy hole, where the VMM writes nothing."""
    image = ElfImage(elf64([(0xFF000, b"\x7fELF" + bytes(60), 0x1000), (0x100000, CODE, 16)],
                           notes=pvh_note(0x100000)))
    with GuestMemory(MEM) as mem:
        assert load_pvh(mem, image, None, "").rip == 0x100000
        assert mem.read(0xFF000, 4) == b"\x7fELF" and mem.read(0x100000, 16) == CODE


def test_memory_too_small_for_kernel_and_program():
    with GuestMemory(2 << 20) as mem, pytest.raises(UsageError, match="too small"):
        load_pvh(mem, ElfImage(good_kernel()), bytes(2 << 20), "")


def test_overlong_command_line():
    with GuestMemory(MEM) as mem, pytest.raises(UsageError, match="command line"):
        load_pvh(mem, ElfImage(good_kernel()), None, "x" * layout.CMDLINE_MAX_SIZE)
