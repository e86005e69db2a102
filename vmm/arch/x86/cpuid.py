"""The CPUID table every engine presents: one CPU model for KVM and the software engine.

The table is a conservative x86-64 baseline (SSE up to SSE4.2, no AVX, no XSAVE, no PCID)
that both KVM and unicorn 2.1.4 execute correctly, plus a hypervisor leaf with our
signature. Bit positions are from the Intel SDM volume 2A, CPUID; the hypervisor leaves
follow the convention Linux documents in Documentation/virt/kvm/x86/cpuid.rst and that
VMware introduced for 0x40000010 (TSC and APIC bus frequency in kHz). Leaves 0x15 and 0x16
tell the same rates the way Intel CPUs do, which is where a stock Linux kernel looks.
"""
from ...records import record

from ... import layout

TSC_CRYSTAL_LEAF = 0x15                # EAX/EBX = TSC / crystal ratio, ECX = crystal Hz
FREQUENCY_LEAF = 0x16                  # EAX = base MHz, EBX = maximum MHz, ECX = bus MHz
# The "crystal" our CPUs report is the local APIC timer's clock: KVM's in-kernel APIC counts
# at 1 GHz (one bus cycle per ns) and so does the software engine's model. Linux takes the
# TSC rate from leaf 0x15 (native_calibrate_tsc) and the APIC timer rate from the same crystal,
# and then calibrates neither against the PIT. It multiplies crystal kHz by the numerator in
# 32 bits, so the ratio is kept as (TSC MHz) / 1000.
CRYSTAL_HZ = 1_000_000_000
TSC_RATIO_DENOMINATOR = 1000
HYPERVISOR_BASE_LEAF = 0x4000_0000
HYPERVISOR_TIMING_LEAF = 0x4000_0010   # EAX = TSC kHz, EBX = APIC bus kHz
EXTENDED_BASE_LEAF = 0x8000_0000
APIC_BUS_KHZ = 1_000_000                # 1 GHz, what KVM's own leaf reports

# Leaf 1 ECX / EDX
F1_ECX = {"sse3": 0, "pclmulqdq": 1, "ssse3": 9, "cx16": 13, "sse4.1": 19, "sse4.2": 20,
          "popcnt": 23, "hypervisor": 31}
F1_EDX = {"fpu": 0, "de": 2, "pse": 3, "tsc": 4, "msr": 5, "pae": 6, "cx8": 8, "apic": 9, "sep": 11,
          "pge": 13, "cmov": 15, "pat": 16, "clflush": 19, "mmx": 23, "fxsr": 24, "sse": 25,
          "sse2": 26}
# Leaf 0x80000001 ECX / EDX
F81_ECX = {"lahf_lm": 0}
F81_EDX = {"syscall": 11, "nx": 20, "rdtscp": 27, "lm": 29}

FAMILY_MODEL_STEPPING = 0x0003_06C3     # family 6, model 0x3c, stepping 3: a Haswell, like unicorn's default
BRAND = b"PyVMM virtual CPU"


def _bits(names: dict) -> int:
    return sum(1 << bit for bit in names.values())


def _regs_of(text: bytes):
    """Split 12 bytes into the EBX, EDX, ECX words CPUID leaf 0 uses for the vendor."""
    return [int.from_bytes(text[i:i + 4], "little") for i in (0, 4, 8)]


@record
class CpuidEntry:
    function: int
    index: int
    eax: int
    ebx: int
    ecx: int
    edx: int
    significant_index: bool = False     # True where the sub-leaf (ECX) selects the answer


class CpuidTable:
    def __init__(self, entries):
        self.entries = list(entries)
        self._by_key = {(e.function, e.index if e.significant_index else 0): e for e in self.entries}
        self._indexed = {e.function for e in self.entries if e.significant_index}

    def lookup(self, function: int, index: int = 0):
        """(eax, ebx, ecx, edx) for CPUID with EAX=function, ECX=index; zeros if absent."""
        entry = self._by_key.get((function, index if function in self._indexed else 0))
        if entry is None:
            return (0, 0, 0, 0)
        return (entry.eax, entry.ebx, entry.ecx, entry.edx)

    def restrict_to(self, supported: "CpuidTable") -> list:
        """Clear feature bits the host cannot give (KVM_GET_SUPPORTED_CPUID); return the
        names of the features dropped, so that the caller can report them."""
        dropped = []
        for function, reg, names in ((1, "ecx", F1_ECX), (1, "edx", F1_EDX),
                                     (EXTENDED_BASE_LEAF + 1, "ecx", F81_ECX),
                                     (EXTENDED_BASE_LEAF + 1, "edx", F81_EDX)):
            ours = self._by_key[(function, 0)]
            host = supported._by_key.get((function, 0))
            host_bits = getattr(host, reg) if host else 0
            for name, bit in names.items():
                if name == "hypervisor":
                    continue                # set by us, never by the host
                if getattr(ours, reg) >> bit & 1 and not host_bits >> bit & 1:
                    setattr(ours, reg, getattr(ours, reg) & ~(1 << bit))
                    dropped.append(name)
        return dropped

    def differences(self, entries) -> list:
        """(function, index, register, table's value, other value) wherever `entries` (objects
        with function, index, eax..edx: what a vCPU reports, KVM_GET_CPUID2) differ from
        the table, including leaves only one side has."""
        differences = []
        seen = set()
        for e in entries:
            key = (e.function, e.index)
            seen.add(key)
            ours = self.lookup(e.function, e.index) if self._has_leaf(e.function, e.index) else None
            for i, reg in enumerate(("eax", "ebx", "ecx", "edx")):
                value = getattr(e, reg)
                if ours is None or ours[i] != value:
                    differences.append((e.function, e.index, reg, None if ours is None else ours[i], value))
        for e in self.entries:
            if (e.function, e.index) not in seen:
                differences.extend((e.function, e.index, reg, getattr(e, reg), None)
                                   for reg in ("eax", "ebx", "ecx", "edx"))
        return differences

    def _has_leaf(self, function: int, index: int) -> bool:
        return any(e.function == function and (e.index == index or not e.significant_index)
                   for e in self.entries)


def build_table(tsc_khz: int) -> CpuidTable:
    """Our CPU model; `tsc_khz` is the rate at which the engine's TSC counts."""
    vendor_ebx, vendor_edx, vendor_ecx = _regs_of(layout.CPUID_VENDOR)
    sig = _regs_of(layout.HYPERVISOR_SIGNATURE)
    brand = BRAND.ljust(48, b"\0")
    brand_words = [int.from_bytes(brand[i:i + 4], "little") for i in range(0, 48, 4)]
    entries = [
        CpuidEntry(0, 0, FREQUENCY_LEAF, vendor_ebx, vendor_ecx, vendor_edx),
        # EBX: CLFLUSH line size 8 quadwords (bits 15:8), one logical processor (23:16), APIC ID 0.
        CpuidEntry(1, 0, FAMILY_MODEL_STEPPING, (1 << 16) | (8 << 8), _bits(F1_ECX), _bits(F1_EDX)),
        CpuidEntry(7, 0, 0, 0, 0, 0, significant_index=True),
        CpuidEntry(TSC_CRYSTAL_LEAF, 0, TSC_RATIO_DENOMINATOR, tsc_khz // 1000, CRYSTAL_HZ, 0),
        CpuidEntry(FREQUENCY_LEAF, 0, tsc_khz // 1000, tsc_khz // 1000, CRYSTAL_HZ // 1_000_000, 0),
        CpuidEntry(HYPERVISOR_BASE_LEAF, 0, HYPERVISOR_TIMING_LEAF, *sig),
        CpuidEntry(HYPERVISOR_TIMING_LEAF, 0, tsc_khz, APIC_BUS_KHZ, 0, 0),
        CpuidEntry(EXTENDED_BASE_LEAF, 0, EXTENDED_BASE_LEAF + 8, 0, 0, 0),
        CpuidEntry(EXTENDED_BASE_LEAF + 1, 0, 0, 0, _bits(F81_ECX), _bits(F81_EDX)),
        CpuidEntry(EXTENDED_BASE_LEAF + 2, 0, *brand_words[0:4]),
        CpuidEntry(EXTENDED_BASE_LEAF + 3, 0, *brand_words[4:8]),
        CpuidEntry(EXTENDED_BASE_LEAF + 4, 0, *brand_words[8:12]),
        # EAX: 40 physical and 48 linear address bits.
        CpuidEntry(EXTENDED_BASE_LEAF + 8, 0, (48 << 8) | 40, 0, 0, 0),
    ]
    return CpuidTable(entries)
