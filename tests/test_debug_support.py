"""Helpers for the vmm/debug tests (no tests here): tiny hand-assembled guests that run on
either engine, and a long-mode machine state with identity-mapped page tables.

The machine code is written out as bytes with its assembly (Intel syntax) beside it.
"""
import struct
from contextlib import contextmanager

from vmm import layout
from vmm.arch.x86 import pvh
from vmm.arch.x86.cpu_state import (CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_PAE, EFER_LMA,
                                    EFER_LME, CpuState, Segment, gdt_descriptor)
from vmm.arch.x86.cpuid import build_table
from vmm.devices.bus import MmioBus, PortBus
from vmm.devices.debug_exit import DebugExit
from vmm.machine import engine_class
from vmm.memory import GuestMemory
from vmm.outcome import RunControl

RAM_SIZE = 4 * layout.MiB
ENTRY = layout.HIGH_MEMORY_START            # 1 MiB, where each guest's code goes

KERNEL_CS, KERNEL_DS = 0x08, 0x10
LONG_GDT = (0,
            gdt_descriptor(0, 0xFFFFF, access=0x9B, flags=0xA),   # ring-0 64-bit code
            gdt_descriptor(0, 0xFFFFF, access=0x93, flags=0xC))   # ring-0 data
LONG_GDT_ADDR = 0x800
PML4, PDPT, PD = 0x9000, 0xA000, 0xB000
STACK_TOP = 0x8000


def u32(value):
    return struct.pack("<I", value)


def u64(value):
    return struct.pack("<Q", value)


def write_long_mode_tables(memory):
    """GDT and page tables identity-mapping the first 4 MiB with two 2 MiB pages."""
    memory.write(LONG_GDT_ADDR, b"".join(u64(d) for d in LONG_GDT))
    memory.write(PML4, u64(PDPT | 0x3))
    memory.write(PDPT, u64(PD | 0x3))
    memory.write(PD, u64(0x0 | 0x83) + u64(0x20_0000 | 0x83))


def long_mode_state(rip: int = ENTRY) -> CpuState:
    code = Segment.from_descriptor(KERNEL_CS, LONG_GDT[1])
    data = Segment.from_descriptor(KERNEL_DS, LONG_GDT[2])
    state = CpuState(rip=rip, cs=code, ds=data, es=data, fs=data, gs=data, ss=data,
                     tr=Segment(base=0x1000, limit=0x67, type=0xB, s=0),
                     gdt_base=LONG_GDT_ADDR, gdt_limit=len(LONG_GDT) * 8 - 1, idt_base=0, idt_limit=0,
                     cr0=CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG, cr3=PML4, cr4=CR4_PAE,
                     efer=EFER_LME | EFER_LMA)
    state.regs["rsp"] = STACK_TOP
    return state


class Guest:
    def __init__(self, memory, engine, control, ports, mmio):
        self.memory, self.engine, self.control, self.ports, self.mmio = memory, engine, control, ports, mmio


@contextmanager
def synthetic_vm(engine_name: str, code: bytes, long_mode: bool = True, wrap_buses=None):
    """A VM on `engine_name` with `code` at ENTRY, in 64-bit long mode (or the PVH 32-bit
    entry state) and the debug-exit port. `wrap_buses(ports, mmio) -> (ports, mmio)` may
    replace the buses the engine sees (the observers of vmm/debug/exits.py)."""
    cls = engine_class(engine_name)
    memory = GuestMemory(RAM_SIZE)
    memory.write(ENTRY, code)
    memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
    if long_mode:
        write_long_mode_tables(memory)
    control = RunControl()
    ports, mmio = PortBus(), MmioBus()
    ports.register(layout.DEBUG_EXIT_PORT, layout.DEBUG_EXIT_PORT_COUNT, DebugExit(control))
    engine_ports, engine_mmio = wrap_buses(ports, mmio) if wrap_buses else (ports, mmio)
    engine = cls(memory, engine_ports, engine_mmio, control, build_table(cls.tsc_khz()))
    try:
        engine.set_state(long_mode_state() if long_mode else pvh.entry_state(ENTRY, layout.PVH_INFO_START))
        yield Guest(memory, engine, control, ports, mmio)
    finally:
        engine.close()
        memory.close()


# --- guest programs (64-bit) ------------------------------------------------------------------------
def exit_with(status: int) -> bytes:
    return (b"\xb8" + u32(status)                       # mov eax, status
            + b"\xe7" + bytes([layout.DEBUG_EXIT_PORT]))  # out DEBUG_EXIT_PORT, eax

# A counting loop, then exit with status 7:
#   ENTRY+0x00: mov ecx, 5
#   ENTRY+0x05: inc rbx            (loop body: the breakpoint target)
#   ENTRY+0x08: dec ecx
#   ENTRY+0x0a: jnz ENTRY+0x05
#   ENTRY+0x0c: mov eax, 7 ; out 0xf4, eax
COUNT_LOOP = (b"\xb9\x05\x00\x00\x00"      # mov ecx, 5
              + b"\x48\xff\xc3"            # inc rbx
              + b"\xff\xc9"                # dec ecx
              + b"\x75\xf9"                # jnz -7
              + exit_with(7))
LOOP_BODY = ENTRY + 5
LOOP_EXIT = ENTRY + 0x0C

# Spins until RBX changes (a debugger writes it), then exits with status 3:
#   ENTRY+0x00: test rbx, rbx
#   ENTRY+0x03: jz ENTRY+0x00
#   ENTRY+0x05: mov eax, 3 ; out 0xf4, eax
SPIN_UNTIL_RBX = (b"\x48\x85\xdb"          # test rbx, rbx
                  + b"\x74\xfb"            # jz -5
                  + exit_with(3))
