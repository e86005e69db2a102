"""Readable reports of a vCPU's state: the register dump, and the crash report built on it.

format_crash_report() adds what a person debugging a crash looks at next: the code around
RIP (disassembled in the CPU's mode, read through the guest's page tables), the top of the
stack, and the last VM exits. It reads the vCPU through a debug view (engines/base.py:
engine.debug(), or DebugView(memory, state) for a saved state), whose reads never raise; a
bad page table or address shows up as text in the report, and no part of a report can
raise: a report must never hide the outcome it explains.
"""
from ..arch.x86.cpu_state import GENERAL_REGISTERS, SEGMENT_REGISTERS
from ..arch.x86.paging import linear_address
from . import disasm

CODE_BEFORE = 4         # instructions shown before RIP
CODE_AFTER = 8          # instructions shown from RIP on
STACK_SLOTS = 12        # stack slots shown from RSP up


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


def format_crash_report(view, recent_exits=None) -> str:
    """The register dump, the code around RIP, the top of the stack and the recent exits of
    the vCPU that `view` shows (an engine's debug interface, or a DebugView).

    `recent_exits`: None, an ExitRing (vmm/debug/exits.py) or a sequence of lines.
    """
    try:
        state = view.read_state()
    except Exception as error:              # noqa: BLE001 - a report must never raise
        return f"(registers unavailable: {error})"
    sections = [
        ("registers", lambda: format_cpu_state(state)),
        ("code", lambda: format_code(view, state)),
        ("stack", lambda: format_stack(view, state)),
    ]
    if recent_exits is not None:
        sections.append(("recent exits", lambda: format_recent_exits(recent_exits)))
    parts = []
    for name, build in sections:
        try:
            parts.append(build())
        except Exception as error:          # noqa: BLE001 - a report part must never raise
            parts.append(f"{name}: (unavailable: {type(error).__name__}: {error})")
    return "\n".join(part for part in parts if part)


def format_code(view, state) -> str:
    """Disassembly around RIP, decoded as the CPU would (16/32/64-bit)."""
    bits = state.bits()
    pc = linear_address(state, state.cs, state.rip)
    where = view.translate(pc)
    located = f"physical {where.physical:#x}" if where else where.error
    header = f"code at {state.cs.selector:#06x}:{state.rip:#x} (linear {pc:#x}, {located}; " \
             f"{bits}-bit, paging {view.paging().mode()}):"
    return "\n".join([header] + disasm.around(view.read_memory, pc, bits, CODE_BEFORE, CODE_AFTER))


def format_stack(view, state, slots: int = STACK_SLOTS) -> str:
    """The top of the stack, one slot (2, 4 or 8 bytes, by mode) per line."""
    width = state.bits() // 8 if state.bits() != 16 else 2
    sp = state.regs["rsp"] if width == 8 else state.regs["rsp"] & (0xFFFF_FFFF if width == 4 else 0xFFFF)
    top = linear_address(state, state.ss, sp)
    data, error = view.read_memory(top, slots * width)
    lines = [f"stack at {state.ss.selector:#06x}:{sp:#x} (linear {top:#x}):"]
    for i in range(len(data) // width):
        value = int.from_bytes(data[i * width:(i + 1) * width], "little")
        lines.append(f"   {top + i * width:#018x}: {value:#0{2 + 2 * width}x}")
    if error:
        lines.append(f"   <{error}>")
    return "\n".join(lines)


def format_recent_exits(recent_exits) -> str:
    lines = recent_exits.lines() if hasattr(recent_exits, "lines") else list(recent_exits)
    if not lines:
        return "recent exits: none recorded"
    return "\n".join([f"last {len(lines)} exits (oldest first):"] + [f"   {line}" for line in lines])
