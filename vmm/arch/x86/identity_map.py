"""Identity-mapping page tables for a 64-bit boot protocol: 2 MiB pages covering the low
`count` GiB, as Firecracker's and cloud-hypervisor's x86 boot code builds them (one PML4 entry,
one PDPT with an entry per GiB, one page directory per GiB). Bit names: Intel SDM vol. 3A,
4.5 (4-level paging)."""
import struct

PRESENT = 1 << 0
WRITABLE = 1 << 1
PAGE_SIZE_BIT = 1 << 7                 # in a PDE: this entry maps a 2 MiB page
ENTRIES = 512
TWO_MIB = 2 << 20


def identity_tables(pml4: int, pdpt: int, pd: int, gibibytes: int):
    """[(guest address, bytes)]: the PML4 at `pml4`, the PDPT at `pdpt` and `gibibytes` page
    directories from `pd` on, mapping virtual = physical for the low `gibibytes` GiB."""
    if not 1 <= gibibytes <= ENTRIES:
        raise ValueError("the identity map covers 1 to 512 GiB")
    tables = [(pml4, struct.pack("<Q", pdpt | PRESENT | WRITABLE).ljust(4096, b"\0"))]
    pdpt_entries = [pd + 4096 * i | PRESENT | WRITABLE for i in range(gibibytes)]
    tables.append((pdpt, struct.pack(f"<{gibibytes}Q", *pdpt_entries).ljust(4096, b"\0")))
    for i in range(gibibytes):
        base = i * ENTRIES * TWO_MIB
        entries = [base + j * TWO_MIB | PRESENT | WRITABLE | PAGE_SIZE_BIT for j in range(ENTRIES)]
        tables.append((pd + 4096 * i, struct.pack(f"<{ENTRIES}Q", *entries)))
    return tables
