"""The PVH boot protocol: the CPU state at the kernel's entry and the hvm_start_info block.

Sources: Xen docs/misc/pvh.pandoc (the entry state) and
xen/include/public/arch-x86/hvm/start_info.h (the structures). QEMU's -kernel and
Firecracker boot PVH kernels the same way.
"""
import struct

from ... import layout
from .cpu_state import (CR0_ET, CR0_PE, RFLAGS_RESERVED_1, TYPE_TSS_BUSY, CpuState, Segment,
                        gdt_descriptor)

XEN_ELFNOTE_PHYS32_ENTRY = 18           # ELF note type (xen/include/public/elfnote.h), name "Xen"
HVM_START_MAGIC = 0x336EC578            # "xEn3" with bit 7 of each byte set
HVM_START_INFO_VERSION = 1              # version 1 adds the memory map

# struct hvm_start_info: magic, version, flags, nr_modules, modlist_paddr, cmdline_paddr,
# rsdp_paddr, memmap_paddr, memmap_entries, reserved.
START_INFO = struct.Struct("<IIIIQQQQII")
# struct hvm_modlist_entry: paddr, size, cmdline_paddr, reserved.
MODLIST_ENTRY = struct.Struct("<QQQQ")
# struct hvm_memmap_table_entry: addr, size, type, reserved.
MEMMAP_ENTRY = struct.Struct("<QQII")
E820_RAM = 1
E820_RESERVED = 2

# The boot GDT: PVH says CS is a flat 32-bit code segment and DS/ES/SS flat data; the
# selectors' values are ours. A TR is loaded because VMX refuses a null TR on entry.
BOOT_CS = 0x08
BOOT_DS = 0x10
BOOT_TR = 0x18
BOOT_GDT = (
    0,
    gdt_descriptor(0, 0xFFFFF, access=0x9B, flags=0xC),   # code: present, ring 0, exec/read; 4K gran, 32-bit
    gdt_descriptor(0, 0xFFFFF, access=0x93, flags=0xC),   # data: present, ring 0, read/write
    gdt_descriptor(0, 0x67, access=0x89, flags=0x0),      # 32-bit TSS, 104 bytes
)


def boot_gdt_bytes() -> bytes:
    return b"".join(d.to_bytes(8, "little") for d in BOOT_GDT)


def entry_state(entry: int, start_info_addr: int) -> CpuState:
    """32-bit flat protected mode, paging off, interrupts off, EBX = &hvm_start_info."""
    code = Segment.from_descriptor(BOOT_CS, BOOT_GDT[1])
    data = Segment.from_descriptor(BOOT_DS, BOOT_GDT[2])
    tss = Segment.from_descriptor(BOOT_TR, BOOT_GDT[3])
    tss.type = TYPE_TSS_BUSY            # a loaded TR is always marked busy
    state = CpuState(
        rip=entry,
        rflags=RFLAGS_RESERVED_1,
        cs=code, ds=data, es=data, fs=data, gs=data, ss=data, tr=tss,
        gdt_base=layout.BOOT_GDT_ADDR,
        gdt_limit=len(BOOT_GDT) * 8 - 1,
        idt_base=0,
        idt_limit=0,
        cr0=CR0_PE | CR0_ET,
    )
    state.regs["rbx"] = start_info_addr
    return state


def start_info(modules, memmap, rsdp_addr: int = 0) -> bytes:
    """Pack hvm_start_info for `modules` [(paddr, size, cmdline_paddr)] and `memmap`
    [(addr, size, type)], with the table addresses from the layout module."""
    return START_INFO.pack(
        HVM_START_MAGIC, HVM_START_INFO_VERSION, 0, len(modules),
        layout.PVH_MODLIST_START if modules else 0,
        layout.CMDLINE_START, rsdp_addr,
        layout.PVH_MEMMAP_START, len(memmap), 0)


def modlist(modules) -> bytes:
    return b"".join(MODLIST_ENTRY.pack(paddr, size, cmdline, 0) for paddr, size, cmdline in modules)


def memmap_table(memmap) -> bytes:
    return b"".join(MEMMAP_ENTRY.pack(addr, size, kind, 0) for addr, size, kind in memmap)


def e820_map(ram_size: int):
    """The memory map a PC presents: low RAM, the legacy hole, and the rest of RAM."""
    entries = [(0, layout.EBDA_START, E820_RAM),
               (layout.EBDA_START, layout.HIGH_MEMORY_START - layout.EBDA_START, E820_RESERVED)]
    if ram_size > layout.HIGH_MEMORY_START:
        entries.append((layout.HIGH_MEMORY_START, ram_size - layout.HIGH_MEMORY_START, E820_RAM))
    return entries
