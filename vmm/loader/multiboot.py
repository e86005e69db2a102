"""Load a Multiboot 1 kernel as GRUB and QEMU's -kernel do (the Multiboot Specification
0.6.96, GNU GRUB's multiboot.texi: "OS image format", "Machine state", "Boot information
format").

The header lies 4-byte aligned in the first 8 KiB. With flag 16 its address fields say where
the image goes (the "a.out kludge"); otherwise the kernel is an ELF32 and its segments are
loaded by physical address. The CPU starts in 32-bit flat protected mode, paging off,
EAX = 0x2BADB002 and EBX = the multiboot_info, which gives the memory (lower/upper and the
E820 map), the command line and the modules (the initrd, if any, as module 0).
"""
import struct

from .. import layout
from ..arch.x86 import pvh
from ..errors import ImageError, UsageError
from .elf import ELFCLASS32, ElfImage
from .pvh import boot_structures, check_overlaps, page_align_up

HEADER_MAGIC = 0x1BADB002
BOOTLOADER_MAGIC = 0x2BADB002         # in EAX at entry
SEARCH_LIMIT = 8192
HEADER = struct.Struct("<III")         # magic, flags, checksum
ADDRESSES = struct.Struct("<IIIII")    # header_addr, load_addr, load_end_addr, bss_end_addr, entry_addr
FLAG_PAGE_ALIGN = 1 << 0               # modules page-aligned (we always do)
FLAG_MEMORY_INFO = 1 << 1              # mem_* and mmap_* wanted (we always give them)
FLAG_VIDEO_MODE = 1 << 2               # a video mode table wanted: we have no display
FLAG_ADDRESSES = 1 << 16
KNOWN_REQUIRED = FLAG_PAGE_ALIGN | FLAG_MEMORY_INFO

# multiboot_info flags and layout
INFO_MEMORY, INFO_CMDLINE, INFO_MODS, INFO_MMAP, INFO_LOADER_NAME = 1 << 0, 1 << 2, 1 << 3, 1 << 6, 1 << 9
INFO = struct.Struct("<IIIIIIIIIIIIIIIII")   # flags .. boot_loader_name (offset 64), 68 bytes
MODULE = struct.Struct("<IIII")        # mod_start, mod_end, string, reserved
MMAP_ENTRY = struct.Struct("<IQQI")    # size (of the rest: 20), base_addr, length, type
LOADER_NAME = b"pyvmm\0"
KIB = 1024


def find_header(data: bytes):
    """(offset, flags) of a valid Multiboot header in the first 8 KiB, or None."""
    limit = min(len(data), SEARCH_LIMIT) - HEADER.size
    for offset in range(0, limit + 1, 4):
        if data[offset:offset + 4] != b"\x02\xb0\xad\x1b":
            continue
        magic, flags, checksum = HEADER.unpack_from(data, offset)
        if (magic + flags + checksum) & 0xFFFF_FFFF == 0:
            return offset, flags
    return None


class MultibootImage:
    def __init__(self, data: bytes):
        found = find_header(data)
        if found is None:
            raise ImageError("kernel has no Multiboot header in its first 8 KiB")
        self.data = data
        self.header_offset, self.flags = found
        unknown = self.flags & 0xFFFF & ~KNOWN_REQUIRED
        if unknown & FLAG_VIDEO_MODE:
            raise ImageError("Multiboot kernel requires a video mode (flag 2); pyvmm has only a serial console")
        if unknown:
            raise ImageError(f"Multiboot kernel requires features pyvmm does not know (flags {unknown:#x})")
        if self.flags & FLAG_ADDRESSES:
            self._from_addresses()
        else:
            elf = ElfImage(data, "Multiboot kernel")
            if elf.elf_class != ELFCLASS32:
                raise ImageError("Multiboot kernel is an ELF64 without the address fields (flag 16); "
                                 "Multiboot 1 loads ELF32 kernels")
            self.entry = elf.entry
            self.segments = [(s.paddr, data[s.offset:s.offset + s.filesz], s.memsz) for s in elf.segments]

    def _from_addresses(self):
        at = self.header_offset + HEADER.size
        if at + ADDRESSES.size > len(self.data):
            raise ImageError("Multiboot kernel is truncated inside its header's address fields")
        header_addr, load_addr, load_end, bss_end, entry = ADDRESSES.unpack_from(self.data, at)
        file_start = self.header_offset - (header_addr - load_addr)
        if load_addr > header_addr or file_start < 0:
            raise ImageError("Multiboot kernel's load_addr lies after its header_addr")
        length = (load_end - load_addr) if load_end else len(self.data) - file_start
        if length < 0 or file_start + length > len(self.data):
            raise ImageError("Multiboot kernel is truncated: load_end_addr lies past the end of the file")
        memsz = max(length, bss_end - load_addr) if bss_end else length
        self.entry = entry
        self.segments = [(load_addr, self.data[file_start:file_start + length], memsz)]

    def extent(self):
        return (min(p for p, _, _ in self.segments), max(p + m for p, _, m in self.segments))


def boot_structures_multiboot():
    """What load_multiboot writes below 1 MiB, by name (for the overlap check)."""
    return [
        ("the boot GDT", layout.BOOT_GDT_ADDR, layout.BOOT_GDT_ADDR + len(pvh.BOOT_GDT) * 8),
        ("the multiboot_info", layout.MULTIBOOT_INFO_START, layout.MULTIBOOT_INFO_START + layout.MULTIBOOT_INFO_SIZE),
        ("the kernel command line", layout.CMDLINE_START, layout.CMDLINE_START + layout.CMDLINE_MAX_SIZE),
        *[s for s in boot_structures() if s[0] == "the ACPI tables"],
    ]


def load_multiboot(memory, image: MultibootImage, module: bytes | None, cmdline: str):
    """Write the kernel, its module and the multiboot_info into `memory`; return the entry CpuState."""
    cmdline_bytes = cmdline.encode() + b"\0"
    if len(cmdline_bytes) > layout.CMDLINE_MAX_SIZE:
        raise UsageError(f"the kernel command line is {len(cmdline_bytes)} bytes; the limit is {layout.CMDLINE_MAX_SIZE}")
    check_overlaps([(p, p + m) for p, _, m in image.segments], boot_structures_multiboot(), "Multiboot kernel")
    low, high = image.extent()
    if high > memory.size:
        raise ImageError(f"Multiboot kernel ends at {high:#x}, past the end of RAM ({memory.size:#x}): raise --mem")
    for paddr, data, memsz in image.segments:
        memory.write(paddr, data)
        memory.write(paddr + len(data), bytes(memsz - len(data)))
    flags = INFO_MEMORY | INFO_CMDLINE | INFO_MMAP | INFO_LOADER_NAME
    modules = b""
    strings_at = layout.MULTIBOOT_INFO_START + INFO.size
    if module is not None:
        module_addr = memory.size - page_align_up(len(module))
        if module_addr < page_align_up(high):
            raise ImageError(f"the module of {len(module) >> 10} KiB does not fit in RAM above the kernel: raise --mem")
        memory.write(module_addr, module)
        modules = MODULE.pack(module_addr, module_addr + len(module), layout.CMDLINE_START, 0)
        flags |= INFO_MODS
    e820 = pvh.e820_map(memory.size)
    mmap = b"".join(MMAP_ENTRY.pack(MMAP_ENTRY.size - 4, addr, size, kind) for addr, size, kind in e820)
    mods_at = strings_at + len(LOADER_NAME) + 3 & ~3
    mmap_at = mods_at + len(modules)
    info = INFO.pack(flags, layout.EBDA_START // KIB, (memory.size - layout.HIGH_MEMORY_START) // KIB, 0,
                     layout.CMDLINE_START, 1 if modules else 0, mods_at if modules else 0, 0, 0, 0, 0,
                     len(mmap), mmap_at, 0, 0, 0, strings_at)
    memory.write(layout.MULTIBOOT_INFO_START, info)
    memory.write(strings_at, LOADER_NAME)
    memory.write(mods_at, modules)
    memory.write(mmap_at, mmap)
    memory.write(layout.CMDLINE_START, cmdline_bytes)
    memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
    state = pvh.entry_state(image.entry, layout.MULTIBOOT_INFO_START)
    state.regs["rax"] = BOOTLOADER_MAGIC
    return state
