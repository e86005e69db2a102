"""The architectural reset state of an x86 CPU (Intel SDM vol. 3A, 9.1.1, table 9-1): where
firmware starts. Real mode, CS selector F000 with base FFFF0000, IP FFF0, so the first
instruction is fetched from physical FFFFFFF0, 16 bytes below 4 GiB."""
from ... import layout
from .cpu_state import CR0_ET, TYPE_CODE_XR_ACCESSED, TYPE_DATA_RW_ACCESSED, CpuState, Segment

CR0_CD = 1 << 30            # caches disabled at reset
CR0_NW = 1 << 29
REAL_MODE_LIMIT = 0xFFFF


def reset_state(cpu_signature: int = 0) -> CpuState:
    """EDX holds the processor signature (CPUID leaf 1 EAX) after reset."""
    def data_segment():
        return Segment(selector=0, base=0, limit=REAL_MODE_LIMIT, type=TYPE_DATA_RW_ACCESSED)

    state = CpuState(
        rip=layout.RESET_VECTOR_IP,
        cs=Segment(selector=layout.RESET_VECTOR_CS, base=layout.RESET_VECTOR_CS_BASE,
                   limit=REAL_MODE_LIMIT, type=TYPE_CODE_XR_ACCESSED),
        ds=data_segment(), es=data_segment(), fs=data_segment(), gs=data_segment(), ss=data_segment(),
        gdt_base=0, gdt_limit=0xFFFF, idt_base=0, idt_limit=0xFFFF,
        cr0=CR0_CD | CR0_NW | CR0_ET,
    )
    state.regs["rdx"] = cpu_signature
    return state
