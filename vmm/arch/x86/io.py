"""Port and MMIO accesses on a PC: what a read returns when nothing answers it.

A read no device claims (an empty port, an unassigned MMIO address, or one the VMM drops
because the run is stopping) returns all-ones, as on a PC where nothing drives the data
lines (the ISA and PCI "floating bus"). Indexed by the access size in bytes.
"""
ALL_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}
