"""A CpuState into and out of unicorn's CPU, the way KVM_SET_SREGS/KVM_GET_SREGS do it.

Every segment's descriptor cache is written into the CPU-state blob (unicorn_binding.
HiddenState) and the hidden flags QEMU derives from them (CPL, CS32/SS32/CS64, ADDSEG) are
recomputed the way cpu_x86_load_seg_cache does. Control registers go through reg_write,
which runs QEMU's own update functions (PE, LMA, TLB). Real mode, 32-bit protected mode and
long mode all load the same way; no GDT is needed.
"""
from ..arch.x86.cpu_state import (CR0_PE, CR0_PG, DESC_B, DESC_DPL_SHIFT, DESC_L, EFER_LMA,
                                  GENERAL_REGISTERS, RFLAGS_VM, CpuState, Segment)
from .unicorn_layout import (HF_ADDSEG, HF_CPL_MASK, HF_CS32, HF_CS64, HF_LMA, HF_SS32, R_CS, R_DS, R_ES,
                              R_SS, REG_INDEX, SEGMENT_INDEX)


def load_state(uc, hs, state: CpuState) -> None:
    """Load `state` into the CPU of `uc` through its blob `hs`."""
    from . import unicorn_lib as x
    # Control registers through QEMU's own update paths (hidden PE/LMA/FPU flags, TLB).
    uc.reg_write(x.UC_X86_REG_CR0, state.cr0 & ~CR0_PG)      # leaves long mode if paging was on
    hs.save()
    hs.efer = state.efer                                     # EFER.LMA cannot be written by wrmsr
    hs.hflags = (hs.hflags & ~HF_LMA) | (HF_LMA if state.efer & EFER_LMA else 0)
    hs.restore()
    uc.reg_write(x.UC_X86_REG_CR4, state.cr4)
    uc.reg_write(x.UC_X86_REG_CR3, state.cr3)
    uc.reg_write(x.UC_X86_REG_CR0, state.cr0)
    # Everything else in the blob, like KVM_SET_SREGS + KVM_SET_REGS.
    hs.save()
    for name, index in SEGMENT_INDEX.items():
        seg = getattr(state, name)
        hs.set_seg(index, seg.selector, seg.base, seg.limit, segment_flags(seg))
    hs.set_table(hs.lay.tr, state.tr.selector, state.tr.base, state.tr.limit, segment_flags(state.tr))
    hs.set_table(hs.lay.ldt, state.ldt.selector, state.ldt.base, state.ldt.limit, segment_flags(state.ldt))
    hs.set_table(hs.lay.gdt, 0, state.gdt_base, state.gdt_limit, 0)
    hs.set_table(hs.lay.idt, 0, state.idt_base, state.idt_limit, 0)
    hs.set_cr(2, state.cr2)
    for name in GENERAL_REGISTERS:
        hs.set_reg(REG_INDEX[name], state.regs.get(name, 0))
    hs.eip = state.rip
    recompute_segment_hflags(hs, state.rflags)
    hs.finish_exception()
    hs.restore()
    uc.reg_write(x.UC_X86_REG_RFLAGS, state.rflags)           # also sets QEMU's lazy flags
    flush_tlb(uc)


def read_state(uc, hs) -> CpuState:
    from . import unicorn_lib as x
    hs.save()
    state = CpuState(regs={name: hs.reg(REG_INDEX[name]) for name in GENERAL_REGISTERS})
    state.rip = hs.eip
    state.rflags = uc.reg_read(x.UC_X86_REG_RFLAGS)
    for name, index in SEGMENT_INDEX.items():
        setattr(state, name, segment_from_cache(*hs.seg(index)))
    state.tr = segment_from_cache(*hs.table(hs.lay.tr))
    if state.tr.present and state.tr.type in (1, 9):
        state.tr.type |= 2          # QEMU's LTR caches the descriptor before marking it busy
    state.ldt = segment_from_cache(*hs.table(hs.lay.ldt))
    _, state.gdt_base, state.gdt_limit, _ = hs.table(hs.lay.gdt)
    _, state.idt_base, state.idt_limit, _ = hs.table(hs.lay.idt)
    state.cr0, state.cr2, state.cr3, state.cr4 = hs.cr(0), hs.cr(2), hs.cr(3), hs.cr(4)
    state.efer = hs.efer
    return state


def flush_tlb(uc) -> None:
    """Drop every cached translation (after the page tables or CR3 changed under unicorn)."""
    uc.ctl_flush_tlb()


def recompute_segment_hflags(hs, rflags=0) -> None:
    """CPL, CS32, SS32, CS64 and ADDSEG from the segment caches, as QEMU's
    cpu_x86_load_seg_cache derives them (CPL is SS.DPL, as on a VMX entry)."""
    hflags = hs.hflags & ~(HF_CPL_MASK | HF_CS32 | HF_SS32 | HF_CS64 | HF_ADDSEG)
    cs_flags, ss_flags = hs.seg(R_CS)[3], hs.seg(R_SS)[3]
    protected = hs.cr(0) & CR0_PE
    if rflags & RFLAGS_VM:
        hflags |= 3
    elif protected:
        hflags |= (ss_flags >> DESC_DPL_SHIFT) & 3
    if hflags & HF_LMA and cs_flags & DESC_L:
        hflags |= HF_CS32 | HF_CS64
    elif cs_flags & DESC_B:
        hflags |= HF_CS32
    if ss_flags & DESC_B:
        hflags |= HF_SS32
    if not hflags & HF_CS64:
        if not protected or rflags & RFLAGS_VM or not hflags & HF_CS32:
            hflags |= HF_ADDSEG
        elif hs.seg(R_DS)[1] | hs.seg(R_ES)[1] | hs.seg(R_SS)[1]:
            hflags |= HF_ADDSEG
    hs.hflags = hflags


def code_bits(hflags: int) -> int:
    """The size of the code the CPU executes, from QEMU's hidden flags: 16, 32 or 64."""
    return 64 if hflags & HF_CS64 else 32 if hflags & HF_CS32 else 16


def segment_flags(seg: Segment) -> int:
    """CpuState Segment -> QEMU SegmentCache.flags (the descriptor's high dword)."""
    if seg.unusable:
        return seg.dpl << DESC_DPL_SHIFT
    return ((seg.type << 8) | (seg.s << 12) | (seg.dpl << DESC_DPL_SHIFT)
            | (seg.present << 15) | (seg.avl << 20) | (seg.l << 21) | (seg.db << 22) | (seg.g << 23))


def segment_from_cache(selector, base, limit, flags) -> Segment:
    present = (flags >> 15) & 1
    return Segment(selector=selector, base=base, limit=limit, type=(flags >> 8) & 0xF,
                   present=present, dpl=(flags >> DESC_DPL_SHIFT) & 3, db=(flags >> 22) & 1,
                   s=(flags >> 12) & 1, l=(flags >> 21) & 1, g=(flags >> 23) & 1,
                   avl=(flags >> 20) & 1, unusable=int(not present))
