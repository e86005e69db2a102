"""An engine-neutral description of a vCPU's architectural state.

Boot protocols describe their entry state once, as a CpuState; each engine applies it in
its own way (KVM_SET_REGS/SREGS, or unicorn register writes) and reads it back the same way
for crash reports. Bit names follow the Intel SDM, volume 3, chapter 2.
"""
from ...records import field, record

# CR0 (SDM 3A 2.5)
CR0_PE = 1 << 0      # protection enable
CR0_MP = 1 << 1
CR0_ET = 1 << 4      # extension type: hard-wired to 1 on anything since the 486
CR0_NE = 1 << 5
CR0_WP = 1 << 16
CR0_PG = 1 << 31
# CR4
CR4_PSE = 1 << 4     # 4 MiB pages in 32-bit paging
CR4_PAE = 1 << 5
CR4_OSFXSR = 1 << 9
CR4_LA57 = 1 << 12   # 5-level paging
CR4_SMEP = 1 << 20   # supervisor-mode execution prevention
# EFER (MSR 0xC0000080)
EFER_SCE = 1 << 0
EFER_LME = 1 << 8
EFER_LMA = 1 << 10
EFER_NXE = 1 << 11
# RFLAGS (SDM 1 3.4.3)
RFLAGS_RESERVED_1 = 1 << 1   # bit 1 always reads as 1
RFLAGS_TF = 1 << 8           # trap (single-step)
RFLAGS_IF = 1 << 9           # interrupts enabled
RFLAGS_NT = 1 << 14          # nested task
RFLAGS_RF = 1 << 16          # resume
RFLAGS_VM = 1 << 17          # virtual-8086 mode
RFLAGS_AC = 1 << 18          # alignment check

# The x87 and SSE control registers at reset (SDM vol. 1, 8.1.5 and 10.2.3.1).
FPU_CONTROL_WORD_RESET = 0x37F
MXCSR_RESET = 0x1F80

GENERAL_REGISTERS = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
                     "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENT_REGISTERS = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldt")

# Segment descriptor types (SDM 3A 3.4.5.1); S=1 for code/data, S=0 for system segments.
TYPE_DATA_RW_ACCESSED = 0x3
TYPE_CODE_XR_ACCESSED = 0xB
TYPE_TSS_BUSY = 0xB          # with S=0
TYPE_LDT = 0x2               # with S=0

# A segment descriptor's high dword (SDM 3A figure 3-8): the attribute bits.
DESC_TYPE_SHIFT = 8
DESC_CODE = 1 << 11          # in the type: code (else data)
DESC_CONFORMING = 1 << 10    # in a code type: conforming
DESC_WRITABLE = 1 << 9       # in a data type: writable
DESC_S = 1 << 12             # code or data (else a system segment or gate)
DESC_DPL_SHIFT = 13
DESC_P = 1 << 15
DESC_L = 1 << 21             # 64-bit code
DESC_B = 1 << 22             # default operand size / stack size 32-bit
DESC_G = 1 << 23             # limit in 4 KiB units
DESC_ATTRIBUTES = 0x00F0FF00  # type, S, DPL, P, AVL, L, D/B, G


def descriptor_base(low: int, high: int) -> int:
    """The base address of a descriptor given as its two dwords."""
    return (low >> 16) | ((high & 0xFF) << 16) | (high & 0xFF00_0000)


def descriptor_limit(low: int, high: int) -> int:
    """The limit in bytes (scaled by G) of a descriptor given as its two dwords."""
    limit = (low & 0xFFFF) | (high & 0xF_0000)
    return (limit << 12) | 0xFFF if high & DESC_G else limit


@record
class Segment:
    """A segment register with its hidden part (what KVM's struct kvm_segment holds)."""
    selector: int = 0
    base: int = 0
    limit: int = 0xFFFF
    type: int = TYPE_DATA_RW_ACCESSED
    present: int = 1
    dpl: int = 0
    db: int = 0          # default operand size (1 = 32-bit)
    s: int = 1           # 1 = code/data, 0 = system
    l: int = 0           # 64-bit code
    g: int = 0           # limit in 4 KiB units
    avl: int = 0
    unusable: int = 0

    @classmethod
    def from_descriptor(cls, selector: int, descriptor: int) -> "Segment":
        """Decode an 8-byte GDT descriptor (SDM 3A figure 3-8)."""
        limit = (descriptor & 0xFFFF) | ((descriptor >> 32) & 0xF_0000)
        g = (descriptor >> 55) & 1
        return cls(
            selector=selector,
            base=((descriptor >> 16) & 0xFF_FFFF) | ((descriptor >> 32) & 0xFF00_0000),
            limit=(limit << 12) | 0xFFF if g else limit,
            type=(descriptor >> 40) & 0xF,
            s=(descriptor >> 44) & 1,
            dpl=(descriptor >> 45) & 3,
            present=(descriptor >> 47) & 1,
            avl=(descriptor >> 52) & 1,
            l=(descriptor >> 53) & 1,
            db=(descriptor >> 54) & 1,
            g=g,
        )


def gdt_descriptor(base: int, limit: int, access: int, flags: int) -> int:
    """Encode a GDT descriptor: access byte (P DPL S type) and flags nibble (G D/B L AVL)."""
    return ((limit & 0xFFFF) | ((base & 0xFF_FFFF) << 16) | (access << 40)
            | (((limit >> 16) & 0xF) << 48) | (flags << 52) | (((base >> 24) & 0xFF) << 56))


@record
class CpuState:
    regs: dict = field(default_factory=lambda: {name: 0 for name in GENERAL_REGISTERS})
    rip: int = 0xFFF0
    rflags: int = RFLAGS_RESERVED_1
    cs: Segment = field(default_factory=Segment)
    ds: Segment = field(default_factory=Segment)
    es: Segment = field(default_factory=Segment)
    fs: Segment = field(default_factory=Segment)
    gs: Segment = field(default_factory=Segment)
    ss: Segment = field(default_factory=Segment)
    tr: Segment = field(default_factory=lambda: Segment(type=TYPE_TSS_BUSY, s=0))
    ldt: Segment = field(default_factory=lambda: Segment(type=TYPE_LDT, s=0))
    gdt_base: int = 0
    gdt_limit: int = 0xFFFF
    idt_base: int = 0
    idt_limit: int = 0xFFFF
    cr0: int = CR0_ET
    cr2: int = 0
    cr3: int = 0
    cr4: int = 0
    efer: int = 0

    def mode(self) -> str:
        """The CPU mode as a person names it, worked out from CR0, EFER and CS."""
        if not self.cr0 & CR0_PE:
            return "real"
        if self.efer & EFER_LMA:
            return "long (64-bit)" if self.cs.l else "long (compatibility)"
        return "protected (32-bit)" if self.cs.db else "protected (16-bit)"

    def bits(self) -> int:
        """The code size for a disassembler: 16, 32 or 64."""
        if self.cr0 & CR0_PE and self.efer & EFER_LMA and self.cs.l:
            return 64
        return 32 if self.cr0 & CR0_PE and self.cs.db else 16
