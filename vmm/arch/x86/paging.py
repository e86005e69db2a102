"""x86 paging: the one page walker (Intel SDM vol. 3A chapter 4), linear -> guest-physical.

Two users, one walk:
  - the software engine's exception delivery (engines/x86_delivery.py) checks the access
    the CPU makes (access_error: the #PF error code, or None), and sets the accessed and
    dirty bits the CPU would (mark_accessed);
  - the debugger (crash reports, traces, the gdb stub) only reads: translate() says where a
    walk stopped as text, and read()/write() move bytes at linear addresses page by page.

The walk reads page tables only through GuestMemory's bounds-checked reads; an entry outside
RAM ends it (`outside`), it never raises. Paging modes, chosen from CR0.PG, CR4.PAE and EFER.LMA:
  - none:      linear = physical (truncated to 32 bits outside long mode);
  - 32-bit:    2 levels of 4-byte entries, 4 MiB pages when CR4.PSE and PDE.PS (PSE-36);
  - PAE:       4 PDPTEs at CR3, then 2 levels of 8-byte entries, 2 MiB pages;
  - 4-level:   PML4, PDPT (1 GiB pages), PD (2 MiB pages), PT; 5-level (CR4.LA57) is
               reported as unsupported rather than guessed.
"""
from ...layout import PAGE_SIZE
from .cpu_state import (CR0_PE, CR0_PG, CR0_WP, CR4_LA57, CR4_PAE, CR4_PSE, CR4_SMEP, EFER_LMA,
                        EFER_NXE)
from .exceptions import PF_FETCH, PF_PROTECTION, PF_USER, PF_WRITE

PTE_PRESENT = 1 << 0
PTE_WRITABLE = 1 << 1
PTE_USER = 1 << 2
PTE_ACCESSED = 1 << 5
PTE_DIRTY = 1 << 6
PTE_LARGE = 1 << 7              # PS: this entry maps a large page
ADDRESS_MASK_64 = 0x000F_FFFF_FFFF_F000
ADDRESS_MASK_32 = 0xFFFF_F000
PAE_PDPT_MASK = 0xFFFF_FFE0     # CR3 in PAE mode: the 32-byte aligned PDPT
MASK_32 = 0xFFFF_FFFF
MASK_64 = (1 << 64) - 1

# (shift, entry name, may map a large page) per level, top down.
LEVELS_4 = ((39, "PML4E", False), (30, "PDPTE", True), (21, "PDE", True), (12, "PTE", False))
LEVELS_PAE = ((21, "PDE", True), (12, "PTE", False))


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


class Walk:
    """What one walk found. `physical` is the address, or None with `error` saying why and
    `fault` naming the kind: "not-present" (the CPU's #PF), "outside" (an entry outside RAM,
    at `where`) or "unsupported". `entries` are the (address, value) pairs walked, with the
    rights they grant together (`writable`, `user`, `no_execute`), for access checks."""
    __slots__ = ("physical", "error", "fault", "where", "entries", "entry_size", "paged",
                 "writable", "user", "no_execute")

    def __init__(self, paged: bool, entry_size: int = 8):
        self.physical = self.error = self.fault = self.where = None
        self.entries = []
        self.entry_size = entry_size
        self.paged = paged
        self.writable = self.user = True
        self.no_execute = False

    def failed(self, fault: str, error: str, where=None) -> "Walk":
        self.fault, self.error, self.where = fault, error, where
        return self


def walk(paging: Paging, memory, linear: int) -> "Walk":
    """Walk the page tables for `linear` under `paging` (see the module docstring)."""
    mode = paging.mode()
    if mode == "none":
        result = Walk(paged=False)
        result.physical = linear & (MASK_64 if paging.efer & EFER_LMA else MASK_32)
        return result
    if mode == "5-level":
        return Walk(paged=True).failed("unsupported", "5-level paging (CR4.LA57) is not walked")
    if mode == "4-level":
        return _walk(Walk(paged=True), memory, linear, paging.cr3 & ADDRESS_MASK_64, 0x1FF,
                     ADDRESS_MASK_64, LEVELS_4)
    linear &= MASK_32
    if mode == "PAE":
        result = Walk(paged=True)
        where = (paging.cr3 & PAE_PDPT_MASK) + 8 * (linear >> 30)
        pdpte = _entry(memory, where, 8)
        if pdpte is None:
            return result.failed("outside", f"PDPTE at {where:#x} is outside RAM", where)
        if not pdpte & PTE_PRESENT:         # (a PDPTE grants no rights: not an entry for checks)
            return result.failed("not-present", f"not mapped (PDPTE {pdpte:#x} not present)")
        return _walk(result, memory, linear, pdpte & ADDRESS_MASK_64, 0x1FF, ADDRESS_MASK_64, LEVELS_PAE)
    levels = ((22, "PDE", bool(paging.cr4 & CR4_PSE)), (12, "PTE", False))
    return _walk(Walk(paged=True, entry_size=4), memory, linear, paging.cr3 & ADDRESS_MASK_32, 0x3FF,
                 ADDRESS_MASK_32, levels)


def _entry(memory, address: int, size: int):
    """A page-table entry, or None when it lies outside RAM."""
    if not memory.contains(address, size):
        return None
    return int.from_bytes(memory.read(address, size), "little")


def _walk(result: Walk, memory, linear, table, index_mask, address_mask, levels) -> Walk:
    size = result.entry_size
    for shift, name, may_be_large in levels:
        where = table + size * ((linear >> shift) & index_mask)
        entry = _entry(memory, where, size)
        if entry is None:
            return result.failed("outside", f"{name} at {where:#x} is outside RAM", where)
        if not entry & PTE_PRESENT:
            return result.failed("not-present", f"not mapped ({name} {entry:#x} at {where:#x} not present)")
        result.entries.append((where, entry))
        result.writable = result.writable and bool(entry & PTE_WRITABLE)
        result.user = result.user and bool(entry & PTE_USER)
        result.no_execute = result.no_execute or bool(entry >> 63)
        if shift == 12 or (may_be_large and entry & PTE_LARGE):
            page_mask = (1 << shift) - 1
            if size == 4 and shift == 22:       # 4 MiB page: bits 13-20 extend the frame (PSE-36)
                frame = (entry & 0xFFC0_0000) | ((entry >> 13) & 0xFF) << 32
            else:
                frame = entry & address_mask & ~page_mask
            result.physical = frame | (linear & page_mask)
            return result
        table = entry & address_mask
    return result.failed("unsupported", "page walk did not end")    # not reached: the last level is 4 KiB


def access_error(result: Walk, paging: Paging, write: bool, user: bool, fetch: bool):
    """The #PF error code the CPU reports for this access, or None if it is allowed. A walk
    that failed "not-present" is a #PF too; the other failures are the caller's to report."""
    error = (PF_WRITE if write else 0) | (PF_USER if user else 0) | (PF_FETCH if fetch else 0)
    if result.physical is None:
        return error
    if not result.paged:
        return None
    if write and not result.writable and (user or paging.cr0 & CR0_WP):
        return error | PF_PROTECTION
    if user and not result.user:
        return error | PF_PROTECTION
    if fetch and not user and result.user and paging.cr4 & CR4_SMEP:
        return error | PF_PROTECTION
    if fetch and paging.efer & EFER_NXE and result.no_execute:
        return error | PF_PROTECTION
    return None


def mark_accessed(result: Walk, memory, write: bool) -> None:
    """Set the accessed bit of every entry walked, and the dirty bit of the last one for a
    write, as the CPU does on an access it allows."""
    size = result.entry_size
    last = len(result.entries) - 1
    for i, (where, old) in enumerate(result.entries):
        new = old | PTE_ACCESSED | (PTE_DIRTY if write and i == last else 0)
        if new != old:
            memory.view(where, size)[:] = new.to_bytes(size, "little")


# --- the debugger's view: read-only walks, failures as text ----------------------------------------
class Translation:
    """The result of translate(): `physical` (an int) or None with `error` saying why."""
    __slots__ = ("physical", "error")

    def __init__(self, physical=None, error=None):
        self.physical = physical
        self.error = error

    def __bool__(self):
        return self.physical is not None

    def __repr__(self):
        return f"Translation({self.physical:#x})" if self else f"Translation(error={self.error!r})"


def translate(paging: Paging, memory, linear: int) -> Translation:
    """Linear -> guest-physical under `paging`; a failed walk says where it stopped."""
    if paging.mode() == "4-level" and linear >> 47 not in (0, 0x1FFFF):
        return Translation(error="non-canonical address")
    result = walk(paging, memory, linear)
    return Translation(result.physical) if result.physical is not None else Translation(error=result.error)


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
        chunk = min(length, PAGE_SIZE - (linear & 0xFFF))
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
        chunk = min(len(data) - offset, PAGE_SIZE - ((linear + offset) & 0xFFF))
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
