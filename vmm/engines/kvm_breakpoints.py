"""Software breakpoints for KVM: an int3 (0xCC) over an instruction's first byte while the
guest runs, the guest's own byte put back as soon as it stops (engines/kvm_debug.py uses
them where the KVM reports int3 to the VMM: engines/kvm_features.py SW_BREAKPOINTS).

In memory only for the length of a run, so whatever reads or writes guest memory between
runs (the gdb stub's m/M packets, disassembly, crash reports) sees the guest's own code,
and no int3 outlives a session. Each byte is found through the page tables at insertion and
put back at the same physical address, and only if it still holds the int3 (the guest may
have overwritten it meanwhile, loading a program there for instance).

An address takes no int3, and the caller falls back to a debug register or to stepping, when:
  - it does not translate, or lands outside RAM (the firmware's ROM cannot be written);
  - paging is off and `unpaged` is False: linear = physical then says nothing about where
    the code will be once the kernel turns paging on (a user program's `main`, say). Where
    the debug registers do not work (KVM nested in QEMU's TCG) the caller passes True: the
    int3 then goes at the physical address, right for code mapped 1:1 like our kernel's.
"""
from ..arch.x86 import paging as x86_paging

INT3 = 0xCC


class SoftBreakpoints:
    def __init__(self, memory):
        self.memory = memory
        self._originals = {}        # physical address -> the guest's byte there
        self.inserted = set()       # linear addresses that hold an int3 now

    def insert(self, paging: x86_paging.Paging, addresses, unpaged: bool = False) -> list:
        """Put an int3 at each address that can take one; return those that cannot."""
        if paging.mode() == "none" and not unpaged:
            return list(addresses)
        rest = []
        for address in addresses:
            where = x86_paging.translate(paging, self.memory, address)
            if not where or not self.memory.contains(where.physical, 1):
                rest.append(address)
                continue
            physical = where.physical
            if physical not in self._originals:     # (two addresses may map one byte)
                self._originals[physical] = self.memory.read(physical, 1)[0]
                self.memory.write(physical, bytes((INT3,)))
            self.inserted.add(address)
        return rest

    def remove(self) -> None:
        """Put every original byte back (where the int3 is still there)."""
        for physical, original in self._originals.items():
            if self.memory.read(physical, 1)[0] == INT3:
                self.memory.write(physical, bytes((original,)))
        self._originals.clear()
        self.inserted.clear()
