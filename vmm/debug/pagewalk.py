"""Guest virtual memory as a debugger sees it: segment + offset -> linear -> physical.

Engine-neutral and read-only: the walk reads page tables only through GuestMemory's
bounds-checked reads, never sets accessed/dirty bits, and reports a failure as text
("not present", "outside RAM") instead of raising. Crash reports, the instruction tracer
and the gdb stub all read guest memory through here.

Paging modes (Intel SDM vol. 3A chapter 4), chosen from CR0.PG, CR4.PAE and EFER.LMA:
  - none:      linear = physical (truncated to 32 bits outside long mode);
  - 32-bit:    2 levels of 4-byte entries, 4 MiB pages when CR4.PSE and PDE.PS;
  - PAE:       4 PDPTEs at CR3, then 2 levels of 8-byte entries, 2 MiB pages;
  - 4-level:   PML4, PDPT (1 GiB pages), PD (2 MiB pages), PT; 5-level (CR4.LA57) is
               reported as unsupported rather than guessed.
"""
from ..arch.x86.cpu_state import CR0_PE, CR0_PG, CR4_PAE, EFER_LMA

CR4_PSE = 1 << 4
CR4_LA57 = 1 << 12
PAGE_PRESENT = 1 << 0
PAGE_LARGE = 1 << 7             # PS: this entry maps a large page
ADDRESS_MASK_64 = 0x000F_FFFF_FFFF_F000
MASK_32 = 0xFFFF_FFFF
MASK_64 = (1 << 64) - 1


class Translation:
    """The result of a walk: `physical` (an int) or None with `error` saying why."""
    __slots__ = ("physical", "error")

    def __init__(self, physical=None, error=None):
        self.physical = physical
        self.error = error

    def __bool__(self):
        return self.physical is not None

    def __repr__(self):
        return f"Translation({self.physical:#x})" if self else f"Translation(error={self.error!r})"


class Paging:
    """The registers a walk needs, taken once from a CpuState (or given directly)."""
    __slots__ = ("cr0", "cr3", "cr4", "efer")

    def __init__(self, cr0: int, cr3: int, cr4: int, efer: int):
        self.cr0, self.cr3, self.cr4, self.efer = cr0, cr3, cr4, efer

    @classmethod
    def of(cls, state) -> "Paging":
        return cls(state.cr0, state.cr3, state.cr4, state.efer)

    def mode(self) -> str:
        if not (self.cr0 & CR0_PG and self.cr0 & CR0_PE):
            return "none"
        if self.efer & EFER_LMA:
            return "5-level" if self.cr4 & CR4_LA57 else "4-level"
        return "PAE" if self.cr4 & CR4_PAE else "32-bit"


def _entry(memory, address: int, size: int):
    """A page-table entry, or None when it lies outside RAM."""
    if not memory.contains(address, size):
        return None
    return int.from_bytes(memory.read(address, size), "little")


def translate(paging: Paging, memory, linear: int) -> Translation:
    """Linear -> guest-physical under `paging`; a failed walk says where it stopped."""
    mode = paging.mode()
    if mode == "none":
        return Translation(linear & (MASK_64 if paging.efer & EFER_LMA else MASK_32))
    if mode == "5-level":
        return Translation(error="5-level paging (CR4.LA57) is not walked")
    if mode == "4-level":
        top = linear >> 47
        if top not in (0, 0x1FFFF):
            return Translation(error="non-canonical address")
        return _walk(memory, linear, paging.cr3 & ADDRESS_MASK_64, 8, 0x1FF, ADDRESS_MASK_64,
                     ((39, "PML4E", False), (30, "PDPTE", True), (21, "PDE", True), (12, "PTE", False)))
    linear &= MASK_32
    if mode == "PAE":
        where = (paging.cr3 & 0xFFFF_FFE0) + 8 * (linear >> 30)
        pdpte = _entry(memory, where, 8)
        if pdpte is None:
            return Translation(error=f"PDPTE at {where:#x} is outside RAM")
        if not pdpte & PAGE_PRESENT:
            return Translation(error=f"not mapped (PDPTE {pdpte:#x} not present)")
        return _walk(memory, linear, pdpte & ADDRESS_MASK_64, 8, 0x1FF, ADDRESS_MASK_64,
                     ((21, "PDE", True), (12, "PTE", False)))
    return _walk(memory, linear, paging.cr3 & 0xFFFF_F000, 4, 0x3FF, 0xFFFF_F000,
                 ((22, "PDE", bool(paging.cr4 & CR4_PSE)), (12, "PTE", False)))


def _walk(memory, linear, table, size, index_mask, address_mask, levels) -> Translation:
    for shift, name, may_be_large in levels:
        where = table + size * ((linear >> shift) & index_mask)
        entry = _entry(memory, where, size)
        if entry is None:
            return Translation(error=f"{name} at {where:#x} is outside RAM")
        if not entry & PAGE_PRESENT:
            return Translation(error=f"not mapped ({name} {entry:#x} at {where:#x} not present)")
        if shift == 12 or (may_be_large and entry & PAGE_LARGE):
            page_mask = (1 << shift) - 1
            if size == 4 and shift == 22:       # 4 MiB page: bits 13-20 extend the frame (PSE-36)
                frame = (entry & 0xFFC0_0000) | ((entry >> 13) & 0xFF) << 32
            else:
                frame = entry & address_mask & ~page_mask
            return Translation(frame | (linear & page_mask))
        table = entry & address_mask
    return Translation(error="page walk did not end")       # not reached: the last level is 4 KiB


def linear_address(state, segment, offset: int) -> int:
    """Segment base + offset, wrapped to the address size of the CPU's mode. In 64-bit mode
    only FS and GS have bases (the CpuState holds what the engine reported)."""
    if state.efer & EFER_LMA and state.cs.l:
        if segment is state.fs or segment is state.gs:
            return (segment.base + offset) & MASK_64
        return offset & MASK_64
    return (segment.base + offset) & MASK_32


def read(paging: Paging, memory, linear: int, length: int):
    """Read `length` bytes at a linear address, page by page: (bytes, error). On a failure,
    `bytes` holds what was read before it and `error` says why the rest is missing."""
    data = bytearray()
    while length > 0:
        chunk = min(length, 0x1000 - (linear & 0xFFF))
        where = translate(paging, memory, linear)
        if not where:
            return bytes(data), f"{linear:#x}: {where.error}"
        if not memory.contains(where.physical, chunk):
            return bytes(data), f"{linear:#x}: physical {where.physical:#x} is outside RAM"
        data += memory.read(where.physical, chunk)
        linear, length = linear + chunk, length - chunk
    return bytes(data), None


def write(paging: Paging, memory, linear: int, data: bytes):
    """Write bytes at a linear address (the gdb stub's M packet): None, or an error text
    (nothing is written unless every page translates)."""
    pieces = []
    offset = 0
    while offset < len(data):
        chunk = min(len(data) - offset, 0x1000 - ((linear + offset) & 0xFFF))
        where = translate(paging, memory, linear + offset)
        if not where:
            return f"{linear + offset:#x}: {where.error}"
        if not memory.contains(where.physical, chunk):
            return f"{linear + offset:#x}: physical {where.physical:#x} is outside RAM"
        pieces.append((where.physical, data[offset:offset + chunk]))
        offset += chunk
    for physical, piece in pieces:
        memory.write(physical, piece)
    return None
