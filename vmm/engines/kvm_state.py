"""A CpuState into and out of a KVM vCPU: KVM_SET_SREGS + KVM_SET_REGS, and back."""
from ..arch.x86.cpu_state import GENERAL_REGISTERS, SEGMENT_REGISTERS, CpuState, Segment
from ..kvm.structs import KvmRegs


def set_state(vcpu, state: CpuState) -> None:
    sregs = vcpu.get_sregs()            # keeps apic_base, cr8 and the interrupt bitmap
    for name in SEGMENT_REGISTERS:
        _segment_to_kvm(getattr(state, name), getattr(sregs, name))
    sregs.gdt.base, sregs.gdt.limit = state.gdt_base, state.gdt_limit
    sregs.idt.base, sregs.idt.limit = state.idt_base, state.idt_limit
    sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4 = state.cr0, state.cr2, state.cr3, state.cr4
    sregs.efer = state.efer
    vcpu.set_sregs(sregs)
    regs = KvmRegs(rip=state.rip, rflags=state.rflags)
    for name in GENERAL_REGISTERS:
        setattr(regs, name, state.regs.get(name, 0))
    vcpu.set_regs(regs)


def get_state(vcpu) -> CpuState:
    regs = vcpu.get_regs()
    sregs = vcpu.get_sregs()
    state = CpuState(
        regs={name: getattr(regs, name) for name in GENERAL_REGISTERS},
        rip=regs.rip, rflags=regs.rflags,
        gdt_base=sregs.gdt.base, gdt_limit=sregs.gdt.limit,
        idt_base=sregs.idt.base, idt_limit=sregs.idt.limit,
        cr0=sregs.cr0, cr2=sregs.cr2, cr3=sregs.cr3, cr4=sregs.cr4, efer=sregs.efer)
    for name in SEGMENT_REGISTERS:
        setattr(state, name, _segment_from_kvm(getattr(sregs, name)))
    return state


def _segment_to_kvm(seg: Segment, out) -> None:
    out.base, out.limit, out.selector, out.type = seg.base, seg.limit, seg.selector, seg.type
    out.present, out.dpl, out.db, out.s = seg.present, seg.dpl, seg.db, seg.s
    out.l, out.g, out.avl, out.unusable = seg.l, seg.g, seg.avl, seg.unusable


def _segment_from_kvm(k) -> Segment:
    return Segment(selector=k.selector, base=k.base, limit=k.limit, type=k.type, present=k.present,
                   dpl=k.dpl, db=k.db, s=k.s, l=k.l, g=k.g, avl=k.avl, unusable=k.unusable)
