"""A 64-bit machine the VMM sets up itself: flat GDT descriptors, identity-mapping page tables
with 2 MiB pages, a 64-bit TSS, and the CpuState that runs 64-bit code on them (SDM vol. 3A
2.5, 3.4.5, 4.5, 7.7; Firecracker's arch/x86_64 regs.rs does the same for a 64-bit boot).

The benchmark guests (vmm/bench) and the test guests build their machines from these pieces,
each choosing where the tables go and how much is mapped.
"""
import struct

from .cpu_state import (CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_OSFXSR, CR4_PAE, EFER_LMA,
                        EFER_LME, EFER_SCE, TYPE_TSS_BUSY, CpuState, Segment, gdt_descriptor)
from .paging import PTE_LARGE, PTE_PRESENT, PTE_USER, PTE_WRITABLE

GiB, LARGE_PAGE = 1 << 30, 2 << 20
TABLE_SIZE = 0x1000                 # one page-table page: 512 eight-byte entries
TSS64_SIZE = 0x68                   # a 64-bit TSS without an I/O permission bitmap

# Flat descriptors: base 0, limit 4 GiB (SDM 3A 3.4.5); 64-bit code has L=1, D=0.
KERNEL_CODE64 = gdt_descriptor(0, 0xFFFFF, access=0x9B, flags=0xA)   # present, ring 0, execute/read
KERNEL_DATA = gdt_descriptor(0, 0xFFFFF, access=0x93, flags=0xC)     # present, ring 0, read/write
USER_CODE64 = gdt_descriptor(0, 0xFFFFF, access=0xFB, flags=0xA)     # the same in ring 3
USER_DATA = gdt_descriptor(0, 0xFFFFF, access=0xF3, flags=0xC)

LONG_MODE_CR0 = CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG
LONG_MODE_CR4 = CR4_PAE | CR4_OSFXSR
LONG_MODE_EFER = EFER_LME | EFER_LMA | EFER_SCE


def tss64_descriptor(base: int, limit: int = TSS64_SIZE - 1) -> tuple:
    """The two GDT slots of an available 64-bit TSS (type 9) at `base`."""
    return gdt_descriptor(base, limit, access=0x89, flags=0x0), base >> 32


def tss64(rsp0: int = 0, ists=()) -> bytes:
    """A 64-bit TSS: RSP0 at +4, IST1.. at +0x24, the I/O map base beyond the limit (no ports)."""
    tss = bytearray(TSS64_SIZE)
    struct.pack_into("<Q", tss, 4, rsp0)
    for n, ist in enumerate(ists):
        struct.pack_into("<Q", tss, 0x24 + 8 * n, ist)
    struct.pack_into("<H", tss, 0x66, TSS64_SIZE)
    return bytes(tss)


def write_gdt(memory, address: int, descriptors) -> int:
    """The descriptors (ints; a TSS takes two) at `address`; returns the GDT limit."""
    memory.write(address, b"".join(struct.pack("<Q", d) for d in descriptors))
    return 8 * len(descriptors) - 1


def write_identity_map(memory, pml4: int, size: int, pds: int | None = None, user: bool = False) -> None:
    """4-level page tables identity-mapping [0, size) with 2 MiB pages: the PML4 at `pml4`, its
    PDPT on the next page, and one page directory per GiB from `pds` (default: the page after
    the PDPT). `user`: ring 3 may use the pages too."""
    pdpt = pml4 + TABLE_SIZE
    pds = pdpt + TABLE_SIZE if pds is None else pds
    flags = PTE_PRESENT | PTE_WRITABLE | (PTE_USER if user else 0)
    large_pages = (size + LARGE_PAGE - 1) // LARGE_PAGE
    directories = (large_pages + 511) // 512
    memory.write(pml4, struct.pack("<Q", pdpt | flags))
    memory.write(pdpt, b"".join(struct.pack("<Q", (pds + TABLE_SIZE * i) | flags) for i in range(directories)))
    memory.write(pds, b"".join(struct.pack("<Q", (i * LARGE_PAGE) | flags | PTE_LARGE) for i in range(large_pages)))


def map_large_page(memory, pml4: int, linear: int, physical: int, pd: int, user: bool = False) -> None:
    """Map the 2 MiB page at `linear` (in the PML4's first 512 GiB) to `physical`, through the
    page directory at `pd`, which becomes the one for that GiB."""
    pdpt = pml4 + TABLE_SIZE
    flags = PTE_PRESENT | PTE_WRITABLE | (PTE_USER if user else 0)
    memory.write(pdpt + 8 * (linear // GiB), struct.pack("<Q", pd | flags))
    memory.write(pd + 8 * ((linear // LARGE_PAGE) % 512), struct.pack("<Q", physical | flags | PTE_LARGE))


def long_mode_state(rip: int, rsp: int, cr3: int, gdt_base: int, gdt, code: int = 0x08, data: int = 0x10,
                    tr: int | None = None, idt_base: int = 0, idt_limit: int = 0) -> CpuState:
    """Ring 0, 64-bit code: CS = `code` and every data segment = `data`, selectors into `gdt`
    (the descriptors written at `gdt_base`); TR = the 64-bit TSS at selector `tr`, or a
    placeholder busy TSS at 0 (VMX refuses a null TR); interrupts off."""
    state = CpuState(rip=rip, cs=Segment.from_descriptor(code, gdt[code >> 3]),
                     gdt_base=gdt_base, gdt_limit=8 * len(gdt) - 1, idt_base=idt_base, idt_limit=idt_limit,
                     cr0=LONG_MODE_CR0, cr3=cr3, cr4=LONG_MODE_CR4, efer=LONG_MODE_EFER)
    for name in ("ds", "es", "fs", "gs", "ss"):
        setattr(state, name, Segment.from_descriptor(data, gdt[data >> 3]))
    if tr is None:
        state.tr = Segment(base=0, limit=TSS64_SIZE - 1, type=TYPE_TSS_BUSY, s=0)
    else:
        state.tr = Segment.from_descriptor(tr, gdt[tr >> 3])
        state.tr.base |= gdt[(tr >> 3) + 1] << 32     # a 64-bit TSS descriptor's upper half
        state.tr.type = TYPE_TSS_BUSY           # a loaded TR is always marked busy
    state.regs["rsp"] = rsp
    return state
