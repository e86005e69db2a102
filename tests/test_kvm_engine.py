"""KvmEngine on tiny hand-assembled guests: port and MMIO exits, string I/O, HLT, triple
faults, stop requests, timeouts (including a guest spinning natively in ring 3), SIGINT,
CPUID and the CpuState round trip.

The machine code is written out as bytes with its assembly (GNU as, AT&T) beside it.
"""
import os
import signal
import struct
import threading
import time
from contextlib import contextmanager

import pytest

from vmm import layout
from vmm.arch.x86 import pvh
from vmm.arch.x86.cpu_state import (CR0_ET, CR0_MP, CR0_NE, CR0_PE, CR0_PG, CR0_WP, CR4_PAE, EFER_LMA,
                                    EFER_LME, RFLAGS_IF, TYPE_CODE_XR_ACCESSED, CpuState, Segment,
                                    gdt_descriptor)
from vmm.arch.x86.cpuid import build_table
from vmm.devices.bus import MmioBus, PortBus
from vmm.engines import base, kvm_features
from vmm.engines.base import Outcome, RunControl
from vmm.kvm import constants as kc
from vmm.kvm.structs import KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KvmRun
from vmm.memory import GuestMemory

pytestmark = pytest.mark.usefixtures("requires_kvm")

RAM_SIZE = 2 * layout.MiB
ENTRY = layout.HIGH_MEMORY_START            # where each guest's code goes, as a PVH kernel would
SCRATCH = layout.COM1_PORT + 7              # the port the recording device sits on
MMIO_BASE = layout.MMIO_HOLE_START          # a recording MMIO device's range
DATA = 0x3000                               # a scratch buffer for string I/O


class Recorder:
    """A device that logs every access and answers reads with a size-shaped constant."""
    ANSWERS = {1: 0x5A, 2: 0xA55A, 4: 0x1234_5678, 8: 0x1122_3344_5566_7788}

    def __init__(self, on_write=None):
        self.log = []
        self.on_write = on_write

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return self.ANSWERS[size]

    def write(self, offset, size, value):
        self.log.append(("w", offset, size, value))
        if self.on_write:
            self.on_write(value)


class Guest:
    def __init__(self, memory, engine, control, port_device, mmio_device, exit_device):
        self.memory, self.engine, self.control = memory, engine, control
        self.port, self.mmio, self.exit = port_device, mmio_device, exit_device


@contextmanager
def guest(code: bytes, state: CpuState | None = None):
    """A VM with `code` at ENTRY, the PVH entry state (unless `state`), a Recorder on the
    scratch port and on MMIO_BASE, and a debug-exit-like device that requests a stop."""
    from vmm.engines.kvm import KvmEngine
    memory = GuestMemory(RAM_SIZE)
    memory.write(ENTRY, code)
    memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
    control = RunControl()
    ports, mmio = PortBus(), MmioBus()
    port_device, mmio_device = Recorder(), Recorder()
    exit_device = Recorder(on_write=lambda v: control.request_stop(Outcome(base.DEBUG_EXIT, status=v)))
    ports.register(SCRATCH, 1, port_device)
    ports.register(layout.DEBUG_EXIT_PORT, layout.DEBUG_EXIT_PORT_COUNT, exit_device)
    mmio.register(MMIO_BASE, layout.PAGE_SIZE, mmio_device)
    engine = KvmEngine(memory, ports, mmio, control, build_table(KvmEngine.tsc_khz()))
    try:
        engine.set_state(state or pvh.entry_state(ENTRY, layout.PVH_INFO_START))
        yield Guest(memory, engine, control, port_device, mmio_device, exit_device)
    finally:
        engine.close()
        memory.close()


def u32(value):
    return struct.pack("<I", value)


def u64(value):
    return struct.pack("<Q", value)


MOV_DX_SCRATCH = b"\x66\xba" + struct.pack("<H", SCRATCH)     # mov $SCRATCH, %dx
HLT = b"\xf4"


# --- port I/O -------------------------------------------------------------------------------------

def test_out_of_each_size_reaches_the_device():
    code = (MOV_DX_SCRATCH
            + b"\xb0\x41"                       # mov $0x41, %al
            + b"\xee"                           # out %al, (%dx)
            + b"\x66\xb8\x34\x12"               # mov $0x1234, %ax
            + b"\x66\xef"                       # out %ax, (%dx)
            + b"\xb8" + u32(0xDEADBEEF)         # mov $0xdeadbeef, %eax
            + b"\xef"                           # out %eax, (%dx)
            + HLT)
    with guest(code) as g:
        outcome = g.engine.run(5)
        assert outcome.reason == base.HALT
        assert g.port.log == [("w", 0, 1, 0x41), ("w", 0, 2, 0x1234), ("w", 0, 4, 0xDEADBEEF)]
        counts = g.engine.exit_counts()
        assert (counts["io"], counts["hlt"]) == (3, 1)
        assert set(counts) <= {"io", "hlt", "intr"}     # the HLT stays in KVM; a kick (intr) finds it


def test_in_returns_the_device_value():
    code = (MOV_DX_SCRATCH
            + b"\xec"                           # in (%dx), %al
            + b"\x0f\xb6\xd8"                   # movzbl %al, %ebx
            + b"\x66\xed"                       # in (%dx), %ax
            + b"\x0f\xb7\xf0"                   # movzwl %ax, %esi
            + b"\xed"                           # in (%dx), %eax
            + HLT)
    with guest(code) as g:
        assert g.engine.run(5).reason == base.HALT
        regs = g.engine.get_state().regs
        assert (regs["rbx"], regs["rsi"], regs["rax"]) == (0x5A, 0xA55A, 0x1234_5678)
        assert g.port.log == [("r", 0, 1), ("r", 0, 2), ("r", 0, 4)]


def test_string_io_rep_outsb_and_rep_insw():
    code = (MOV_DX_SCRATCH
            + b"\xbe" + u32(DATA)               # mov $DATA, %esi
            + b"\xb9\x05\x00\x00\x00"           # mov $5, %ecx
            + b"\xfc"                           # cld
            + b"\xf3\x6e"                       # rep outsb
            + b"\xbf" + u32(DATA + 0x100)       # mov $DATA+0x100, %edi
            + b"\xb9\x03\x00\x00\x00"           # mov $3, %ecx
            + b"\x66\xf3\x6d"                   # rep insw
            + HLT)
    with guest(code) as g:
        g.memory.write(DATA, b"hello")
        assert g.engine.run(5).reason == base.HALT
        assert g.port.log[:5] == [("w", 0, 1, b) for b in b"hello"]
        assert g.port.log[5:] == [("r", 0, 2)] * 3
        assert g.memory.read(DATA + 0x100, 8) == bytes.fromhex("5aa55aa55aa50000")
        assert g.engine.get_state().regs["rcx"] == 0


# --- MMIO -----------------------------------------------------------------------------------------

def test_mmio_writes_and_reads_reach_the_bus():
    code = (b"\xc7\x05" + u32(MMIO_BASE) + u32(0x1234_5678)    # movl $0x12345678, MMIO_BASE
            + b"\xa1" + u32(MMIO_BASE + 4)                     # mov MMIO_BASE+4, %eax
            + b"\x66\xc7\x05" + u32(MMIO_BASE + 0x10) + b"\xef\xbe"  # movw $0xbeef, MMIO_BASE+0x10
            + b"\x8a\x1d" + u32(MMIO_BASE + 0x11)              # mov MMIO_BASE+0x11, %bl
            + HLT)
    with guest(code) as g:
        assert g.engine.run(5).reason == base.HALT
        assert g.mmio.log == [("w", 0, 4, 0x1234_5678), ("r", 4, 4), ("w", 0x10, 2, 0xBEEF), ("r", 0x11, 1)]
        regs = g.engine.get_state().regs
        assert regs["rax"] == 0x1234_5678 and regs["rbx"] & 0xFF == 0x5A
        assert g.engine.exit_counts()["mmio"] == 4


def test_eight_byte_mmio_in_long_mode():
    code = (b"\x48\xb8" + u64(0x0102_0304_0506_0708)   # movabs $0x0102030405060708, %rax
            + b"\x48\xa3" + u64(MMIO_BASE + 0x20)      # movabs %rax, MMIO_BASE+0x20
            + b"\x48\xa1" + u64(MMIO_BASE + 0x28)      # movabs MMIO_BASE+0x28, %rax
            + HLT)
    with guest(code, long_mode_state()) as g:
        write_long_mode_tables(g.memory)
        assert g.engine.run(5).reason == base.HALT
        assert g.mmio.log == [("w", 0x20, 8, 0x0102_0304_0506_0708), ("r", 0x28, 8)]
        assert g.engine.get_state().regs["rax"] == 0x1122_3344_5566_7788


# --- how runs end -----------------------------------------------------------------------------------

def test_hlt_with_interrupts_off_is_halt():
    with guest(b"\x90" + HLT) as g:                     # nop; hlt
        outcome = g.engine.run(5)
        assert outcome.reason == base.HALT
        assert outcome.rip == ENTRY + 2
        assert f"rip={ENTRY + 2:#x}" in outcome.detail


@pytest.mark.kvm_feature(kvm_features.REGISTERS_AFTER_SHUTDOWN)
def test_triple_fault_is_shutdown():
    with guest(b"\x0f\x0b") as g:                       # ud2, with no IDT (limit 0)
        outcome = g.engine.run(5)
        assert outcome.reason == base.SHUTDOWN
        assert outcome.detail == f"triple fault at rip={ENTRY:#x}"
        assert outcome.rip == ENTRY


@pytest.mark.kvm_lacks(kvm_features.REGISTERS_AFTER_SHUTDOWN)
def test_triple_fault_on_amd_says_the_registers_are_lost():
    """kvm_amd INITs the vCPU on a shutdown intercept: the engine does not pass the reset
    state's rip off as the faulting one."""
    with guest(b"\x0f\x0b") as g:
        outcome = g.engine.run(5)
        assert outcome.reason == base.SHUTDOWN and outcome.rip is None
        assert outcome.detail.startswith("triple fault (rip unknown: KVM on AMD resets the vCPU")
        assert g.engine.get_state().rip == 0xFFF0                       # the INIT state's


def test_debug_exit_stop_drops_later_io():
    code = (b"\xb0\x2a"                                  # mov $42, %al
            + b"\xe6" + bytes([layout.DEBUG_EXIT_PORT])  # out %al, $DEBUG_EXIT_PORT
            + MOV_DX_SCRATCH
            + b"\xee"                                    # out %al, (%dx): must not happen
            + HLT)
    with guest(code) as g:
        outcome = g.engine.run(5)
        assert (outcome.reason, outcome.status) == (base.DEBUG_EXIT, 42)
        assert outcome.rip == ENTRY + 4                  # just after the OUT, which completed
        assert outcome.detail
        assert g.exit.log == [("w", 0, 1, 42)]
        assert g.port.log == []
        assert g.engine.get_state().rip == ENTRY + 4


def test_stop_during_rep_outsb_drops_the_rest():
    stops_after = []

    code = (MOV_DX_SCRATCH
            + b"\xbe" + u32(DATA)                        # mov $DATA, %esi
            + b"\xb9\x08\x00\x00\x00"                    # mov $8, %ecx
            + b"\xf3\x6e"                                # rep outsb
            + HLT)
    with guest(code) as g:
        g.port.on_write = lambda v: (stops_after.append(v),
                                     v == ord("c") and g.control.request_stop(Outcome(base.DEBUG_EXIT, status=3)))
        g.memory.write(DATA, b"abcdefgh")
        outcome = g.engine.run(5)
        assert (outcome.reason, outcome.status) == (base.DEBUG_EXIT, 3)
        assert bytes(stops_after) == b"abc"


def test_spinning_guest_times_out():
    with guest(b"\xeb\xfe") as g:                        # jmp .
        started = time.monotonic()
        outcome = g.engine.run(0.5)
        elapsed = time.monotonic() - started
        assert outcome.reason == base.TIMEOUT
        assert outcome.rip == ENTRY and "rip=" in outcome.detail
        assert 0.45 <= elapsed < 2.0
        # The run can be resumed, and times out again.
        assert g.engine.run(0.2).reason == base.TIMEOUT


def test_ring3_spin_is_kicked_out_by_the_timeout():
    """A guest that drops to ring 3 and spins there runs natively, never exiting by itself."""
    user = ENTRY + 0x20
    code = (b"\x6a" + bytes([USER_DS | 3])               # push $USER_DS|3       (ss)
            + b"\x68" + u32(0x8000)                      # push $0x8000          (rsp)
            + b"\x6a\x02"                                # push $2               (rflags)
            + b"\x6a" + bytes([USER_CS | 3])             # push $USER_CS|3       (cs)
            + b"\x68" + u32(user)                        # push $user            (rip)
            + b"\x48\xcf").ljust(0x20, b"\x90")          # iretq
    code += b"\xeb\xfe"                                  # user: jmp user
    with guest(code, long_mode_state()) as g:
        write_long_mode_tables(g.memory)
        started = time.monotonic()
        outcome = g.engine.run(0.5)
        assert outcome.reason == base.TIMEOUT
        assert 0.45 <= time.monotonic() - started < 2.0
        state = g.engine.get_state()
        assert (state.cs.selector, state.cs.dpl, state.rip) == (USER_CS | 3, 3, user)


def test_hlt_with_interrupts_on_sleeps_until_the_deadline():
    state = pvh.entry_state(ENTRY, 0)
    state.rflags |= RFLAGS_IF
    with guest(HLT, state) as g:
        cpu_before, started = time.process_time(), time.monotonic()
        outcome = g.engine.run(0.3)
        assert outcome.reason == base.TIMEOUT
        assert 0.28 <= time.monotonic() - started < 2.0
        assert time.process_time() - cpu_before < 0.15     # slept, did not spin
        assert outcome.rip == ENTRY + 1


def test_stop_request_from_another_thread_ends_a_spin():
    with guest(b"\xeb\xfe") as g:
        timer = threading.Timer(0.2, g.control.request_stop, (Outcome(base.INTERRUPTED, detail="stop"),))
        timer.start()
        started = time.monotonic()
        outcome = g.engine.run(10)
        timer.join()
        assert outcome.reason == base.INTERRUPTED
        assert outcome.rip == ENTRY
        assert time.monotonic() - started < 2.0


def test_stop_request_wakes_a_halted_guest_without_timeout():
    state = pvh.entry_state(ENTRY, 0)
    state.rflags |= RFLAGS_IF
    with guest(HLT, state) as g:
        timer = threading.Timer(0.2, g.control.request_stop, (Outcome(base.DEBUG_EXIT, status=0),))
        timer.start()
        outcome = g.engine.run()
        timer.join()
        assert (outcome.reason, outcome.status) == (base.DEBUG_EXIT, 0)


def test_sigint_interrupts_the_run():
    with guest(b"\xeb\xfe") as g:
        timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
        timer.start()
        started = time.monotonic()
        outcome = g.engine.run(10)
        timer.join()
        assert outcome.reason == base.INTERRUPTED
        assert time.monotonic() - started < 2.0


def test_engine_runs_in_another_thread():
    results = []
    with guest(b"\xeb\xfe") as g:
        worker = threading.Thread(target=lambda: results.append(g.engine.run(0.3)))
        worker.start()
        worker.join(5)
        assert [o.reason for o in results] == [base.TIMEOUT]


def test_kick_handler_is_restored_when_the_last_engine_closes():
    from vmm.kvm import kick
    if kick._pinned or kick._users:
        pytest.skip("the kick handler is pinned or in use elsewhere in this process")
    before = signal.getsignal(kick.KICK_SIGNAL)
    with guest(HLT), guest(HLT):
        assert signal.getsignal(kick.KICK_SIGNAL) is kick._on_kick
    assert signal.getsignal(kick.KICK_SIGNAL) is before


def test_engine_created_in_another_thread_needs_the_handler(monkeypatch):
    from vmm.engines.kvm import KvmEngine
    from vmm.errors import VmmError
    from vmm.kvm import kick
    if kick.kick_handler_installed():
        pytest.skip("a kick handler is already installed in this process")
    errors = []

    def create():
        with GuestMemory(RAM_SIZE) as memory:
            try:
                KvmEngine(memory, PortBus(), MmioBus(), RunControl(), build_table(1000)).close()
            except VmmError as error:
                errors.append(str(error))
    worker = threading.Thread(target=create)
    worker.start()
    worker.join(10)
    assert len(errors) == 1 and "install_kick_handler() from the main thread" in errors[0]


# --- CPUID and state --------------------------------------------------------------------------------

@pytest.mark.parametrize("leaf", [0, 1, 7, 0x4000_0000, 0x4000_0010, 0x8000_0001, 0x8000_0002, 0x8000_0008])
def test_ring0_guest_sees_the_vcpu_cpuid(leaf):
    """CPUID in the guest kernel answers from our table, except where KVM overrode entries
    (KvmEngine.cpuid_overrides: kvm_pvm merges host features into leaves 1 and 7)."""
    code = (b"\xb8" + u32(leaf)                        # mov $leaf, %eax
            + b"\x31\xc9"                                # xor %ecx, %ecx
            + b"\x0f\xa2"                                # cpuid
            + b"\x89\xc7\x89\xde\x89\xcd\x89\xd3"        # mov %eax,%edi; mov %ebx,%esi; mov %ecx,%ebp; mov %edx,%ebx
            + MOV_DX_SCRATCH
            + b"\x89\xf8\xef"                            # mov %edi, %eax; out %eax, (%dx)
            + b"\x89\xf0\xef"                            # mov %esi, %eax; out
            + b"\x89\xe8\xef"                            # mov %ebp, %eax; out
            + b"\x89\xd8\xef"                            # mov %ebx, %eax; out
            + HLT)
    with guest(code) as g:
        assert g.engine.run(5).reason == base.HALT
        seen = [entry[3] for entry in g.port.log]
        expected = list(g.engine.cpuid.lookup(leaf))
        for function, index, reg, ours, kvms in g.engine.cpuid_overrides:
            if (function, index) == (leaf, 0):
                expected["eax ebx ecx edx".split().index(reg)] = kvms
        assert seen == expected


def test_identity_leaves_are_never_overridden():
    with guest(HLT) as g:
        overridden = {function for function, *_ in g.engine.cpuid_overrides}
        assert not overridden & {0, 0x4000_0000, 0x4000_0010, 0x8000_0000, 0x8000_0002}
        for name in g.engine.dropped_features:
            assert isinstance(name, str)
        assert g.engine.cpuid.lookup(1)[2] >> 31 & 1    # the hypervisor bit stays


def assert_same_state(got: CpuState, want: CpuState):
    assert got.regs == want.regs
    for name in ("rip", "rflags", "gdt_base", "gdt_limit", "idt_base", "idt_limit", "cr0", "cr2", "cr3",
                 "cr4", "efer"):
        assert getattr(got, name) == getattr(want, name), name
    for name in ("cs", "ds", "es", "fs", "gs", "ss", "tr"):
        assert getattr(got, name) == getattr(want, name), name


def test_state_round_trip_pvh():
    state = pvh.entry_state(ENTRY, layout.PVH_INFO_START)
    for i, name in enumerate(state.regs):
        state.regs[name] = 0x1000 * (i + 1) + i
    with guest(HLT, state) as g:
        assert_same_state(g.engine.get_state(), state)
        assert g.engine.get_state().mode() == "protected (32-bit)"


def test_state_round_trip_real_mode_and_long_mode():
    real = CpuState(rip=0x7C00, cs=Segment(selector=0x700, base=0x7000, type=TYPE_CODE_XR_ACCESSED))
    with guest(HLT, real) as g:
        got = g.engine.get_state()
        assert_same_state(got, real)
        assert got.mode() == "real"
        long_state = long_mode_state()
        long_state.regs["r15"] = 0xFFFF_FFFF_FFFF_FFFF
        g.engine.set_state(long_state)
        got = g.engine.get_state()
        assert_same_state(got, long_state)
        assert got.mode() == "long (64-bit)"


# --- exits decoded from kvm_run (KVM cannot be made to produce these on purpose) -------------------

def _decode(g, reason, fill):
    run = KvmRun()
    fill(run)
    g.engine._vcpu.snapshot = lambda: run
    return g.engine._other_exit(reason, None)


def test_rare_exits_are_described():
    with guest(HLT) as g:
        def emulation(run):
            run.emulation_failure.suberror = kc.KVM_INTERNAL_ERROR_EMULATION
            run.emulation_failure.ndata = 3
            run.emulation_failure.flags = KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
            run.emulation_failure.insn_size = 4
            run.emulation_failure.insn_bytes[:4] = [0xF0, 0x48, 0x0F, 0xC7]
        outcome = _decode(g, kc.KVM_EXIT_INTERNAL_ERROR, emulation)
        assert outcome.reason == base.EMULATION_FAILURE
        assert "f0 48 0f c7" in outcome.detail and f"rip={ENTRY:#x}" in outcome.detail

        def delivery(run):
            run.internal.suberror = kc.KVM_INTERNAL_ERROR_DELIVERY_EV
            run.internal.ndata = 1
            run.internal.data[0] = 0x80000b0e
        outcome = _decode(g, kc.KVM_EXIT_INTERNAL_ERROR, delivery)
        assert outcome.reason == base.INTERNAL_ERROR and "0x80000b0e" in outcome.detail

        def entry(run):
            run.fail_entry.hardware_entry_failure_reason = 0x21
        outcome = _decode(g, kc.KVM_EXIT_FAIL_ENTRY, entry)
        assert outcome.reason == base.ENTRY_FAILURE and "0x21" in outcome.detail

        def reset(run):
            run.system_event.type = kc.KVM_SYSTEM_EVENT_RESET
        outcome = _decode(g, kc.KVM_EXIT_SYSTEM_EVENT, reset)
        assert outcome.reason == base.SYSTEM_EVENT and "reset" in outcome.detail

        outcome = _decode(g, kc.KVM_EXIT_IRQ_WINDOW_OPEN, lambda run: None)
        assert outcome.reason == base.INTERNAL_ERROR and "7 (irq-window-open)" in outcome.detail
        assert g.engine.exit_counts()["irq-window-open"] == 1


def test_close_twice_is_harmless():
    with guest(HLT) as g:
        g.engine.close()
        g.engine.close()
        assert g.control.kick is None


# --- a long-mode test machine: identity-mapped, with ring-3 segments ---------------------------------

KERNEL_CS, KERNEL_DS, USER_CS, USER_DS = 0x08, 0x10, 0x18, 0x20
LONG_GDT = (0,
            gdt_descriptor(0, 0xFFFFF, access=0x9B, flags=0xA),   # ring-0 64-bit code
            gdt_descriptor(0, 0xFFFFF, access=0x93, flags=0xC),   # ring-0 data
            gdt_descriptor(0, 0xFFFFF, access=0xFB, flags=0xA),   # ring-3 64-bit code
            gdt_descriptor(0, 0xFFFFF, access=0xF3, flags=0xC))   # ring-3 data
LONG_GDT_ADDR = 0x800
PML4, PDPT, PD_LOW, PD_MMIO = 0x9000, 0xA000, 0xB000, 0xC000
PAGE_PRESENT_RW_USER, PAGE_SIZE_2M = 0x7, 0x80


def write_long_mode_tables(memory):
    """GDT, and page tables identity-mapping the first 2 MiB (user-accessible) and the 2 MiB
    at MMIO_BASE with 2 MiB pages."""
    memory.write(LONG_GDT_ADDR, b"".join(u64(d) for d in LONG_GDT))
    memory.write(PML4, u64(PDPT | PAGE_PRESENT_RW_USER))
    memory.write(PDPT, u64(PD_LOW | PAGE_PRESENT_RW_USER))
    memory.write(PDPT + 8 * (MMIO_BASE >> 30), u64(PD_MMIO | PAGE_PRESENT_RW_USER))
    memory.write(PD_LOW, u64(0 | PAGE_PRESENT_RW_USER | PAGE_SIZE_2M))
    memory.write(PD_MMIO + 8 * ((MMIO_BASE >> 21) & 511), u64(MMIO_BASE | PAGE_PRESENT_RW_USER | PAGE_SIZE_2M))


def long_mode_state() -> CpuState:
    code = Segment.from_descriptor(KERNEL_CS, LONG_GDT[1])
    data = Segment.from_descriptor(KERNEL_DS, LONG_GDT[2])
    state = CpuState(rip=ENTRY, cs=code, ds=data, es=data, fs=data, gs=data, ss=data,
                     tr=Segment(base=0x1000, limit=0x67, type=0xB, s=0),
                     gdt_base=LONG_GDT_ADDR, gdt_limit=len(LONG_GDT) * 8 - 1, idt_base=0, idt_limit=0,
                     cr0=CR0_PE | CR0_MP | CR0_ET | CR0_NE | CR0_WP | CR0_PG, cr3=PML4, cr4=CR4_PAE,
                     efer=EFER_LME | EFER_LMA)
    state.regs["rsp"] = 0x7000
    return state
