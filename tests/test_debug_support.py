"""Helpers for the vmm/debug tests (no tests here): tiny hand-assembled guests that run on
either engine, and a long-mode machine state with identity-mapped page tables.

The machine code is written out as bytes with its assembly (Intel syntax) beside it.
"""
import struct
from contextlib import contextmanager

from vmm import layout
from vmm.arch.x86 import long_mode, pvh
from vmm.arch.x86.cpu_state import CpuState
from vmm.arch.x86.cpuid import build_table
from vmm.devices.bus import MmioBus, PortBus
from vmm.devices.debug_exit import DebugExit
from vmm.machine import engine_class
from vmm.memory import GuestMemory
from vmm.outcome import RunControl

RAM_SIZE = 4 * layout.MiB
ENTRY = layout.HIGH_MEMORY_START            # 1 MiB, where each guest's code goes

KERNEL_CS, KERNEL_DS = 0x08, 0x10
LONG_GDT = (0, long_mode.KERNEL_CODE64, long_mode.KERNEL_DATA)
LONG_GDT_ADDR = 0x800
PML4 = 0x9000                               # its PDPT and one page directory follow
STACK_TOP = 0x8000


def u32(value):
    return struct.pack("<I", value)


def u64(value):
    return struct.pack("<Q", value)


def write_long_mode_tables(memory):
    """GDT and page tables identity-mapping the first 4 MiB with two 2 MiB pages."""
    long_mode.write_gdt(memory, LONG_GDT_ADDR, LONG_GDT)
    long_mode.write_identity_map(memory, PML4, 4 * layout.MiB)


def long_mode_state(rip: int = ENTRY) -> CpuState:
    return long_mode.long_mode_state(rip, STACK_TOP, PML4, LONG_GDT_ADDR, LONG_GDT, KERNEL_CS, KERNEL_DS)


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
