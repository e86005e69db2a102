"""Lay out a PVH boot in guest RAM: kernel segments, the program as module 0, the command
line, hvm_start_info with its module list and memory map, and the boot GDT.

The facts (structures, entry state) are in arch/x86/pvh.py; the addresses in layout.py.
"""
from .. import layout
from ..arch.x86 import pvh
from ..errors import ImageError, UsageError
from .elf import ElfImage

# Memory the tiny kernel needs beyond its image and the program for page tables, stacks
# and the program's own pages: below this the guest could not run even `hello`.
GUEST_WORKING_SET = 1 * layout.MiB


def page_align_up(value: int) -> int:
    return (value + layout.PAGE_SIZE - 1) & ~(layout.PAGE_SIZE - 1)


def pvh_entry(kernel: ElfImage) -> int:
    note = kernel.note(b"Xen", pvh.XEN_ELFNOTE_PHYS32_ENTRY)
    if note is None:
        raise ImageError("kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
                         "build it with the note or boot it through --firmware")
    if len(note.desc) not in (4, 8):
        raise ImageError(f"kernel's PVH entry note has a {len(note.desc)}-byte address")
    return int.from_bytes(note.desc[:4], "little")


def boot_structures(firmware: bool = False):
    """(name, start, end) of everything the VMM writes into low memory for a PVH boot, and
    with `firmware`, what the firmware uses there too. A kernel segment may lie anywhere else
    (a kernel linked at 1 MiB by plain ld has its ELF headers in a segment at 0xff000)."""
    structures = [
        ("the boot GDT", layout.BOOT_GDT_ADDR, layout.BOOT_GDT_ADDR + len(pvh.BOOT_GDT) * 8),
        ("hvm_start_info", layout.PVH_INFO_START, layout.PVH_INFO_START + pvh.START_INFO.size),
        ("the PVH module list", layout.PVH_MODLIST_START, layout.PVH_MODLIST_START + pvh.MODLIST_ENTRY.size),
        ("the PVH memory map", layout.PVH_MEMMAP_START,
         layout.PVH_MEMMAP_START + layout.PVH_MEMMAP_MAX_ENTRIES * pvh.MEMMAP_ENTRY.size),
        ("the kernel command line", layout.CMDLINE_START, layout.CMDLINE_START + layout.CMDLINE_MAX_SIZE),
        ("the ACPI tables", layout.ACPI_TABLES_START, layout.ACPI_TABLES_START + layout.ACPI_TABLES_SIZE),
    ]
    if firmware:
        structures.append(("the firmware's stack", *layout.FIRMWARE_STACK))
    return structures


def check_overlaps(segments, structures, what: str = "kernel") -> None:
    """Refuse a segment [(start, end)] that overlaps one of `structures`, naming it."""
    for start, end in segments:
        for name, low, high in structures:
            if start < high and low < end:
                raise ImageError(f"{what} segment {start:#x}-{end:#x} overlaps {name} at {low:#x}-{high:#x}")


def load_kernel(memory, kernel: ElfImage, firmware: bool = False):
    """Copy a PVH kernel's segments into `memory`, BSS zeroed; return (entry, low, high).
    Both boot paths use it: the direct PVH boot, and fw_cfg, which (like QEMU) pre-loads
    the kernel for the firmware."""
    entry = pvh_entry(kernel)
    low, high = kernel.extent()
    check_overlaps([(s.paddr, s.paddr + s.memsz) for s in kernel.segments], boot_structures(firmware))
    if high > memory.size:
        raise too_small(memory.size, high, f"the kernel, which ends at {high:#x}")
    for segment in kernel.segments:
        memory.write(segment.paddr, kernel.data[segment.offset:segment.offset + segment.filesz])
        # RAM starts zeroed, but a VM object may be reused: clear the BSS explicitly.
        bss = segment.memsz - segment.filesz
        if bss:
            memory.write(segment.paddr + segment.filesz, bytes(bss))
    return entry, low, high


def module_address(memory_size: int, module_size: int) -> int:
    """Module 0 goes at the top of RAM, page-aligned, as QEMU places an initrd."""
    return memory_size - page_align_up(module_size)


def check_fits(memory_size: int, kernel: ElfImage, module: bytes | None) -> None:
    module_size = page_align_up(len(module)) if module is not None else 0
    needed = page_align_up(kernel.extent()[1]) + module_size + GUEST_WORKING_SET
    if needed > memory_size:
        raise too_small(memory_size, needed, f"the kernel and program, which need at least "
                                              f"{page_align_up(needed) // layout.KiB}K")


def too_small(memory_size: int, needed: int, what: str):
    """The error for RAM that cannot hold `what`: raising --mem helps (UsageError) only when
    `needed` bytes are within the maximum; beyond it the image itself is at fault."""
    if needed > layout.MAX_MEM_SIZE:
        return ImageError(f"no guest RAM can hold {what}: the maximum of --mem is "
                          f"{layout.MAX_MEM_SIZE // layout.MiB}M")
    return UsageError(f"--mem {memory_size // layout.KiB}K is too small for {what}")


def load_pvh(memory, kernel: ElfImage, module: bytes | None, cmdline: str, rsdp_addr: int = 0):
    """Write everything the PVH kernel expects into `memory`; return its entry CpuState."""
    cmdline_bytes = cmdline.encode() + b"\0"
    if len(cmdline_bytes) > layout.CMDLINE_MAX_SIZE:
        raise UsageError(f"the kernel command line is {len(cmdline_bytes)} bytes; the limit is {layout.CMDLINE_MAX_SIZE}")
    pvh_entry(kernel)
    check_fits(memory.size, kernel, module)
    entry, _, _ = load_kernel(memory, kernel)

    modules = []
    if module is not None:
        module_addr = module_address(memory.size, len(module))
        memory.write(module_addr, module)
        modules.append((module_addr, len(module), 0))

    memmap = pvh.e820_map(memory.size)
    memory.write(layout.CMDLINE_START, cmdline_bytes)
    memory.write(layout.PVH_MODLIST_START, pvh.modlist(modules))
    memory.write(layout.PVH_MEMMAP_START, pvh.memmap_table(memmap))
    memory.write(layout.PVH_INFO_START, pvh.start_info(modules, memmap, rsdp_addr))
    memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
    return pvh.entry_state(entry, layout.PVH_INFO_START)
