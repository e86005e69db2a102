"""A readable dump of a vCPU's state, for crash and timeout reports."""
from ..arch.x86.cpu_state import GENERAL_REGISTERS, SEGMENT_REGISTERS


def format_cpu_state(state) -> str:
    lines = [f"mode: {state.mode()}   rip={state.rip:#018x} rflags={state.rflags:#x}"]
    regs = [f"{name}={state.regs[name]:#018x}" for name in GENERAL_REGISTERS]
    lines += ["  ".join(regs[i:i + 4]) for i in range(0, len(regs), 4)]
    lines.append(f"cr0={state.cr0:#x} cr2={state.cr2:#x} cr3={state.cr3:#x} cr4={state.cr4:#x} efer={state.efer:#x}")
    for name in SEGMENT_REGISTERS:
        seg = getattr(state, name)
        lines.append(f"{name:>3}: sel={seg.selector:#06x} base={seg.base:#x} limit={seg.limit:#x} "
                     f"type={seg.type} dpl={seg.dpl} l={seg.l} db={seg.db}")
    lines.append(f"gdt: base={state.gdt_base:#x} limit={state.gdt_limit:#x}   "
                 f"idt: base={state.idt_base:#x} limit={state.idt_limit:#x}")
    return "\n".join(lines)
