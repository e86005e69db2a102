"""What only the unicorn engine does, on small hand-written guests (GNU as, assembled at test
time): delivery through the guest IDT, SYSCALL, double faults, exact and resumable stops,
signals, host writes into guest RAM. The engine contract both engines keep is
tests/test_engine_contract.py."""
import shutil
import struct
import subprocess

import pytest

from vmm import layout
from vmm.arch.x86 import cpuid, long_mode, pvh
from vmm.arch.x86.cpu_state import CR0_ET, EFER_LMA, CpuState, Segment
from vmm.devices.bus import MmioBus, PortBus
from vmm.engines.base import DEBUG_EXIT, HALT, SHUTDOWN, TIMEOUT, Outcome, RunControl
from vmm.memory import GuestMemory

from vmm.engines import unicorn as unicorn_engine    # a broken engine module fails here, never skips

from conftest import skip_unless_engine

UnicornEngine = unicorn_engine.UnicornEngine
skip_unless_engine("unicorn")
if not (shutil.which("as") and shutil.which("ld") and shutil.which("objcopy") and shutil.which("nm")):
    raise RuntimeError("GNU binutils (as, ld, objcopy, nm) build the test guests: `make test` installs them")

MEM_SIZE = 16 << 20
CODE = 0x100000             # guest code (ring 0)
USER = 0x200000             # ring-3 code (its own 2 MiB page)
USER_STACK = 0x300000
PML4 = 0x1000               # its PDPT follows
PDS = 0x10000               # four page directories: identity map of the first 4 GiB
EXTRA_PD = 0x14000          # maps HIGH_LINEAR to HIGH_PHYSICAL (far beyond RAM)
GDT, TSS, IDT = 0x4000, 0x5000, 0x6000
UNMAPPED = 0x1_0000_0000    # linear addresses from 4 GiB are not mapped (#PF)
HIGH_LINEAR, HIGH_PHYSICAL = 0x1_4000_0000, 0x40_0000_0000   # within 40 physical bits
RSP0, IST1 = 0x9000, 0xB000
REC_PTR, REC_BASE, REC_SIZE = 0x7FF8, 0x20000, 88
BOOT_STACK = 0xF000
EXIT_PORT, PROBE_PORT = 0xF4, 0x80
MMIO_BASE = 0xD000_0000
TSC_KHZ = 1_000_000


# --- building guests ------------------------------------------------------------------------------
_assembled = {}


def assemble(source: str, origin: int, bits: int = 64):
    """(bytes, {symbol: address}) for `source` linked at `origin`; cached per source."""
    key = (source, origin, bits)
    if key in _assembled:
        return _assembled[key]
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        with open(f"{tmp}/g.s", "w") as f:
            f.write(f".intel_syntax noprefix\n.code{bits}\n.globl _start\n_start:\n{source}\n")
        subprocess.run(["as", "--64", "-o", f"{tmp}/g.o", f"{tmp}/g.s"], check=True, capture_output=True)
        subprocess.run(["ld", "-Ttext", hex(origin), "-o", f"{tmp}/g.elf", f"{tmp}/g.o"],
                       check=True, capture_output=True)
        subprocess.run(["objcopy", "-O", "binary", "-j", ".text", f"{tmp}/g.elf", f"{tmp}/g.bin"],
                       check=True, capture_output=True)
        names = subprocess.run(["nm", f"{tmp}/g.elf"], check=True, capture_output=True, text=True).stdout
        with open(f"{tmp}/g.bin", "rb") as f:
            blob = f.read()
    symbols = {name: int(addr, 16) for addr, _, name in (line.split() for line in names.splitlines())}
    _assembled[key] = (blob, symbols)
    return blob, symbols


class Recorder:
    """A port device that records accesses and may ask the VM to stop."""

    def __init__(self, control=None, stop_on_write=False, read_value=0x5A):
        self.writes, self.reads = [], []
        self.control, self.stop_on_write, self.read_value = control, stop_on_write, read_value

    def read(self, offset, size):
        self.reads.append((offset, size))
        return self.read_value

    def write(self, offset, size, value):
        self.writes.append((offset, size, value))
        if self.stop_on_write:
            self.control.request_stop(Outcome(DEBUG_EXIT, status=value))


class DebugExit:
    def __init__(self, control):
        self.control = control

    def read(self, offset, size):
        return 0

    def write(self, offset, size, value):
        self.control.request_stop(Outcome(DEBUG_EXIT, status=value & 0xFF))


class Vm:
    def __init__(self):
        self.memory = GuestMemory(MEM_SIZE)
        self.ports, self.mmio, self.control = PortBus(), MmioBus(), RunControl()
        self.ports.register(EXIT_PORT, 4, DebugExit(self.control))
        self.probe = Recorder()
        self.ports.register(PROBE_PORT, 1, self.probe)
        self.engine = None

    def start(self, state):
        self.engine = UnicornEngine(self.memory, self.ports, self.mmio, self.control,
                                    cpuid.build_table(TSC_KHZ))
        self.engine.set_state(state)
        return self.engine

    def run(self, timeout=5.0):
        return self.engine.run(timeout)

    def close(self):
        if self.engine:
            self.engine.close()
        self.memory.close()


@pytest.fixture
def vm():
    machine = Vm()
    yield machine
    machine.close()


GDT_ENTRIES = (0, long_mode.KERNEL_CODE64, long_mode.KERNEL_DATA, long_mode.USER_DATA, long_mode.USER_CODE64,
               *long_mode.tss64_descriptor(TSS))


def write_long_mode_tables(memory):
    """Identity-map the first 4 GiB with user-accessible 2 MiB pages, plus one page beyond
    RAM; the GDT our guests use: 0x08 kernel code, 0x10 kernel data, 0x18 user data,
    0x20 user code, 0x28 TSS (RSP0, IST1)."""
    long_mode.write_identity_map(memory, PML4, 4 << 30, pds=PDS, user=True)
    long_mode.map_large_page(memory, PML4, HIGH_LINEAR, HIGH_PHYSICAL, EXTRA_PD, user=True)
    long_mode.write_gdt(memory, GDT, GDT_ENTRIES)
    memory.write(TSS, long_mode.tss64(RSP0, [IST1]))


def long_mode_state(rip, rsp=BOOT_STACK):
    return long_mode.long_mode_state(rip, rsp, PML4, GDT, GDT_ENTRIES, tr=0x28, idt_base=IDT, idt_limit=0xFFF)


def idt_gate(handler, selector=0x08, gate_type=0xE, dpl=0, ist=0, present=1):
    lo = (handler & 0xFFFF) | (selector << 16) | (ist << 32) | (gate_type << 40) | (dpl << 45) \
        | (present << 47) | (((handler >> 16) & 0xFFFF) << 48)
    return struct.pack("<QQ", lo, handler >> 32)


def run_code(vm, source, state_fn=long_mode_state, timeout=5.0, origin=CODE, bits=64):
    blob, symbols = assemble(source, origin, bits)
    vm.memory.write(origin, blob)
    write_long_mode_tables(vm.memory)
    vm.start(state_fn(origin))
    return vm.run(timeout), symbols


# --- the ring-3 guest: a tiny kernel that takes faults and system calls ------------------------------
ERROR_CODE_VECTORS = {8, 10, 11, 12, 13, 14, 17, 21, 29, 30}
STUBS = "\n".join(
    f".balign 16\nisr{v}:\n" + ("" if v in ERROR_CODE_VECTORS else "push 0\n") + f"push {v}\njmp common"
    for v in range(256))

KERNEL = f"""
    lgdt [rip + gdtr]
    lidt [rip + idtr]
    mov ax, 0x28
    ltr ax
    mov ax, 0x10
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov ecx, 0xC0000081             # STAR: syscall CS 0x08, sysret base 0x10 (SS 0x1b, CS 0x23)
    xor eax, eax
    mov edx, 0x00100008
    wrmsr
    mov ecx, 0xC0000082             # LSTAR
    lea rax, [rip + syscall_entry]
    mov rdx, rax
    shr rdx, 32
    wrmsr
    mov ecx, 0xC0000084             # FMASK: clear TF, IF, DF
    mov eax, 0x700
    xor edx, edx
    wrmsr
    mov qword ptr [{REC_PTR}], {REC_BASE}
    push 0x1b
    push {USER_STACK}
    push 0x202
    push 0x23
    push {USER}
    iretq
gdtr: .word 7 * 8 - 1
    .quad {GDT}
idtr: .word 0xfff
    .quad {IDT}

common:                             # stack: vector, error, rip, cs, rflags, rsp, ss
    push rax
    push rbx
    mov rbx, [{REC_PTR}]
    mov rax, [rsp + 16]
    mov [rbx], rax
    mov rax, [rsp + 24]
    mov [rbx + 8], rax
    mov rax, cr2
    mov [rbx + 16], rax
    mov rax, [rsp + 32]
    mov [rbx + 24], rax
    mov rax, [rsp + 40]
    mov [rbx + 32], rax
    mov rax, [rsp + 48]
    mov [rbx + 40], rax
    mov rax, [rsp + 56]
    mov [rbx + 48], rax
    mov rax, [rsp + 64]
    mov [rbx + 56], rax
    lea rax, [rsp + 32]
    mov [rbx + 64], rax
    xor eax, eax
    mov ax, cs
    mov [rbx + 72], rax
    pushfq
    pop rax
    mov [rbx + 80], rax
    add rbx, {REC_SIZE}
    mov [{REC_PTR}], rbx
    test byte ptr [rsp + 40], 3
    jz kernel_fault
    mov [rsp + 32], r15             # resume where the user program said
    pop rbx
    pop rax
    add rsp, 16
    iretq
kernel_fault:
    mov al, 0xEE
    out {EXIT_PORT}, al
    hlt
loop_handler:                       # for #PF: drop the error code, retry the instruction
    add rsp, 8
    iretq

syscall_entry:
    cmp rax, 60
    je do_exit
    mov rbx, [{REC_PTR}]
    mov qword ptr [rbx], 0x100
    mov [rbx + 8], rax
    mov [rbx + 16], rcx
    mov [rbx + 24], r11
    xor eax, eax
    mov ax, cs
    mov [rbx + 32], rax
    mov ax, ss
    mov [rbx + 40], rax
    mov [rbx + 48], rsp
    pushfq
    pop rax
    mov [rbx + 56], rax
    add rbx, {REC_SIZE}
    mov [{REC_PTR}], rbx
    mov eax, 0x5678
    sysretq
do_exit:
    mov eax, edi
    out {EXIT_PORT}, al
    hlt

.org 0x1000
{STUBS}
"""

USER_PROGRAM = f"""
pf_read:
    lea r15, [rip + pf_write]
    mov rbx, {UNMAPPED}
pf_read_at:
    mov rax, [rbx]
pf_write:
    lea r15, [rip + gp_cli]
    mov rbx, {UNMAPPED + 0x1000}
pf_write_at:
    mov byte ptr [rbx], 1
gp_cli:
    lea r15, [rip + ud]
gp_cli_at:
    cli
ud:
    lea r15, [rip + de]
ud_at:
    ud2
de:
    lea r15, [rip + sys]
    xor edx, edx
    xor ecx, ecx
    mov eax, 1
de_at:
    div ecx
sys:
    mov eax, 0x1234
    syscall
sys_return:
    mov r14, rax
    lea r15, [rip + int80]
    int3
bp_next:
int80:
    lea r15, [rip + int81]
int80_at:
    int 0x80
int81:
    lea r15, [rip + pf_again]
    int 0x81
int81_next:
pf_again:
    lea r15, [rip + gp_hlt]
    mov rbx, {UNMAPPED + 8}
    mov rax, [rbx]
gp_hlt:
    lea r15, [rip + done]
gp_hlt_at:
    hlt
done:
    mov edi, r14d
    mov eax, 60
    syscall
"""


def prepare_ring3_guest(vm, user_program=USER_PROGRAM, idt=None):
    kernel, ksyms = assemble(KERNEL, CODE)
    user, usyms = assemble(user_program, USER)
    vm.memory.write(CODE, kernel)
    vm.memory.write(USER, user)
    write_long_mode_tables(vm.memory)
    stubs = CODE + 0x1000
    gates = idt or b"".join(idt_gate(stubs + 16 * v, dpl=3 if v in (3, 0x81) else 0, ist=1 if v == 8 else 0)
                            for v in range(256))
    vm.memory.write(IDT, gates)
    vm.start(long_mode_state(CODE))
    return ksyms, usyms


def records(vm):
    end = vm.memory.read_u64(REC_PTR)
    out = []
    for at in range(REC_BASE, end, REC_SIZE):
        out.append(struct.unpack("<11Q", vm.memory.read(at, REC_SIZE)))
    return out


def test_ring3_program_takes_faults_and_syscalls_through_the_guest_idt(vm):
    ksyms, u = prepare_ring3_guest(vm)
    outcome = vm.run()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x78), outcome
    recs = records(vm)
    kinds = [(r[0], r[1]) for r in recs]
    assert kinds == [(14, 4), (14, 6), (13, 0), (6, 0), (0, 0), (0x100, 0x1234), (3, 0), (13, 0x80 * 8 + 2),
                     (0x81, 0), (14, 4), (13, 0)]
    pf_read, pf_write, gp, ud, de, sys, bp, gp80, int81, pf2, hlt = recs
    # faults: the saved RIP is the faulting instruction; CR2 for #PF
    assert pf_read[2] == UNMAPPED and pf_read[3] == u["pf_read_at"]
    assert pf_write[2] == UNMAPPED + 0x1000 and pf_write[3] == u["pf_write_at"]
    assert gp[3] == u["gp_cli_at"] and ud[3] == u["ud_at"] and de[3] == u["de_at"]
    assert pf2[2] == UNMAPPED + 8 and hlt[3] == u["gp_hlt_at"]
    # int3 and int 0x81 are traps: saved RIP after the instruction; int 0x80 hits a DPL-0
    # gate, and the #GP points at the INT itself
    assert bp[3] == u["bp_next"] and int81[3] == u["int81_next"]
    assert gp80[3] == u["int80_at"]
    for rec in (pf_read, pf_write, gp, ud, de, bp, gp80, int81, pf2, hlt):
        vector, _, _, _, saved_cs, saved_rflags, saved_rsp, saved_ss, frame, handler_cs, handler_rflags = rec
        assert (saved_cs, saved_ss, saved_rsp) == (0x23, 0x1B, USER_STACK)
        assert saved_rflags & (1 << 9)                       # user ran with IF=1
        assert handler_cs == 0x08 and not handler_rflags & (1 << 9)   # interrupt gate cleared IF
        assert frame == RSP0 - 40                            # the RSP0 stack from the TSS
    # syscall: kernel CS/SS from STAR, RCX/R11, FMASK applied, user stack kept
    _, number, rcx, r11, cs, ss, rsp, flags = sys[:8]
    assert (cs, ss, rsp, rcx) == (0x08, 0x10, USER_STACK, u["sys_return"])
    assert r11 & (1 << 9) and not flags & (1 << 9)
    counts = vm.engine.exit_counts()
    assert counts["exception"] == 10 and counts["syscall"] == 2


def test_faults_in_later_runs_do_not_become_double_faults(vm):
    """Each emu_start must leave no exception "in flight" (unicorn's end-of-run cleanup
    once left one behind, and the next #GP became #DF). Here every fault ends the run."""
    prepare_ring3_guest(vm)
    delivery, switch = vm.engine._delivery, vm.engine._switch
    deliver = delivery.deliver_exception

    def deliver_and_stop(*args):
        switch.arm()
        return deliver(*args)
    delivery.deliver_exception = deliver_and_stop
    outcome = vm.run()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x78), outcome
    assert [r[0] for r in records(vm)] == [14, 14, 13, 6, 0, 0x100, 3, 13, 0x81, 14, 13]
    assert vm.engine.exit_counts()["slice"] > 10


def test_delivery_failure_is_a_triple_fault(vm):
    # An IDT whose #GP and #DF gates are not present: #UD -> #NP -> #DF -> #NP = shutdown.
    gates = bytearray(idt_gate(CODE, present=0) * 256)
    ksyms, u = prepare_ring3_guest(vm, user_program="ud2\n", idt=bytes(gates))
    outcome = vm.run()
    assert outcome.reason == SHUTDOWN
    assert "triple fault" in outcome.detail and "#DF" in outcome.detail


def test_double_fault_uses_its_ist_stack(vm):
    # The #PF gate is not present: #PF -> #NP(14*8+2) is benign after a #PF? No: #NP is
    # contributory, so #PF followed by it is a #DF, delivered on IST1.
    gates = bytearray(b"".join(idt_gate(CODE + 0x1000 + 16 * v, ist=1 if v == 8 else 0) for v in range(256)))
    gates[14 * 16:15 * 16] = idt_gate(CODE + 0x1000 + 16 * 14, present=0)
    program = f"lea r15, [rip + done]\nmov rbx, {UNMAPPED}\nmov rax, [rbx]\n" \
              "done:\nmov edi, 0x33\nmov eax, 60\nsyscall\n"
    prepare_ring3_guest(vm, user_program=program, idt=bytes(gates))
    outcome = vm.run()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x33)
    (rec,) = records(vm)
    assert (rec[0], rec[1]) == (8, 0)
    assert rec[8] == IST1 - 40
    assert rec[2] == UNMAPPED                               # CR2 still names the address


def test_fault_loop_does_not_hang(vm):
    # The #PF handler returns to the faulting instruction, forever.
    kernel, ksyms = assemble(KERNEL, CODE)
    gates = b"".join(idt_gate(ksyms["loop_handler"] if v == 14 else CODE + 0x1000 + 16 * v)
                     for v in range(256))
    prepare_ring3_guest(vm, user_program=f"mov rbx, {UNMAPPED}\nmov rax, [rbx]\n", idt=gates)
    outcome = vm.run(timeout=0.3)
    assert outcome.reason == TIMEOUT
    assert vm.engine.exit_counts()["exception"] > 100


# --- port I/O, MMIO, CPUID ------------------------------------------------------------------------
def test_unclaimed_port_and_mmio_read_all_ones_and_are_counted(vm):
    source = f"""
    mov dx, 0x1234
    in eax, dx
    mov r8d, eax
    mov al, 1
    out dx, al
    mov rbx, 0xE0000010
    mov eax, [rbx]
    mov r9d, eax
    mov dword ptr [rbx + 4], 7
    mov rbx, {HIGH_LINEAR}            # physical {HIGH_PHYSICAL:#x}: far beyond 4 GiB
    mov rax, [rbx]
    mov r10, rax
    cli
    hlt
"""
    outcome, _ = run_code(vm, source)
    assert outcome.reason == HALT
    regs = vm.engine.get_state().regs
    assert regs["r8"] == 0xFFFF_FFFF and regs["r9"] == 0xFFFF_FFFF and regs["r10"] == (1 << 64) - 1
    assert (vm.ports.unclaimed_reads, vm.ports.unclaimed_writes) == (1, 1)
    assert vm.mmio.unclaimed_reads == 3 and vm.mmio.unclaimed_writes == 1   # the 8-byte read is split


class MmioDevice:
    def __init__(self, control=None):
        self.log, self.control = [], control

    def read(self, offset, size):
        self.log.append(("r", offset, size))
        return 0x11223344

    def write(self, offset, size, value):
        self.log.append(("w", offset, size, value))
        if self.control is not None and offset == 0x40:
            self.control.request_stop(Outcome(DEBUG_EXIT, status=value))


def test_mmio_read_write_reach_the_device(vm):
    dev = MmioDevice()
    vm.mmio.register(MMIO_BASE + 0x200, 0x100, dev)
    source = f"""
    mov rbx, {MMIO_BASE + 0x200}
    mov eax, [rbx + 8]
    mov r8, rax
    mov word ptr [rbx + 0x10], 0xbeef
    mov byte ptr [rbx + 0x12], 0x7f
    mov eax, [rbx - 4]              # same page, not the device: unclaimed
    mov r9, rax
    cli
    hlt
"""
    outcome, _ = run_code(vm, source)
    assert outcome.reason == HALT
    assert dev.log == [("r", 8, 4), ("w", 0x10, 2, 0xBEEF), ("w", 0x12, 1, 0x7F)]
    regs = vm.engine.get_state().regs
    assert regs["r8"] == 0x11223344 and regs["r9"] == 0xFFFF_FFFF
    counts = vm.engine.exit_counts()
    assert counts["mmio-read"] == 2 and counts["mmio-write"] == 2


def test_stop_inside_rep_outsb_is_exact_and_resumable(vm):
    class StopOnSecond(Recorder):
        def write(self, offset, size, value):
            super().write(offset, size, value)
            if len(self.writes) == 2:
                vm.control.request_stop(Outcome(DEBUG_EXIT, status=value))
    dev = StopOnSecond()
    vm.ports.register(0x500, 1, dev)
    source = """
    mov dx, 0x500
    lea rsi, [rip + text]
    mov ecx, 5
string:
    rep outsb
    cli
    hlt
text: .ascii "abcde"
"""
    outcome, syms = run_code(vm, source)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, ord("b"))
    assert bytes(v for _, _, v in dev.writes) == b"ab"
    state = vm.engine.get_state()
    assert state.rip == syms["string"] and state.regs["rcx"] == 3
    vm.control.stop = None                  # resuming finishes the string, nothing repeated
    assert vm.run().reason == HALT
    assert bytes(v for _, _, v in dev.writes) == b"abcde"


def test_stop_from_an_mmio_write_drops_later_accesses(vm):
    mdev = MmioDevice(vm.control)
    vm.mmio.register(MMIO_BASE, 0x1000, mdev)
    source = """
    mov rbx, 0xD0000000
    mov dword ptr [rbx + 0x40], 9
    mov eax, [rbx + 0x48]
    mov dword ptr [rbx + 0x44], 10
    jmp next
next:
    mov dword ptr [rbx + 0x44], 11
    hlt
"""
    outcome, syms = run_code(vm, source)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 9)
    assert mdev.log == [("w", 0x40, 4, 9)]
    assert outcome.rip == syms["next"]                       # stopped before the next block


def test_stops_between_runs_repeat_nothing(vm):
    """A device asks for a stop that is not final (the host wrote code): the run stops at
    a block boundary and resumes exactly."""
    class Dma(Recorder):
        def write(self, offset, size, value):
            super().write(offset, size, value)
            vm.memory.write(0x500000, b"x")                 # host write while the guest runs
    vm.ports.register(0x500, 1, Dma())
    source = """
    mov rbx, 0x600000
    xor ecx, ecx
loop:
    inc qword ptr [rbx]
    mov dx, 0x500
    out dx, al
    inc qword ptr [rbx + 8]
    inc rcx
    cmp rcx, 2000
    jne loop
    cli
    hlt
"""
    outcome, _ = run_code(vm, source)
    assert outcome.reason == HALT
    assert vm.memory.read_u64(0x600000) == vm.memory.read_u64(0x600008) == 2000
    assert vm.engine.exit_counts()["slice"] >= 2000


def test_cpuid_table_features_are_implemented_by_the_cpu_model(vm):
    """Every feature bit we advertise must be one unicorn's Haswell model implements."""
    from unicorn import Uc, UC_ARCH_X86, UC_MODE_64
    from unicorn.x86_const import UC_CPU_X86_HASWELL, UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX
    table = cpuid.build_table(TSC_KHZ)
    native = Uc(UC_ARCH_X86, UC_MODE_64, UC_CPU_X86_HASWELL)
    native.mem_map(0, 0x1000)
    native.mem_write(0, b"\x0f\xa2")
    for leaf in (1, 0x8000_0001):
        native.reg_write(UC_X86_REG_EAX, leaf)
        native.reg_write(UC_X86_REG_ECX, 0)
        native.emu_start(0, 2)
        _, _, ecx, edx = table.lookup(leaf)
        hidden = 1 << 31                                    # the hypervisor bit is ours
        assert ecx & ~native.reg_read(UC_X86_REG_ECX) & ~hidden == 0, hex(leaf)
        assert edx & ~native.reg_read(UC_X86_REG_EDX) == 0, hex(leaf)


# --- HLT, timeouts ---------------------------------------------------------------------------------
def test_an_injected_interrupt_wakes_a_halted_guest(vm):
    source = f"""
    lidt [rip + idtr]
    sti
wait:
    hlt
after_hlt:
    jmp wait
handler:
    mov rax, [rsp]                  # the saved RIP
    sub rax, {CODE}
    out {EXIT_PORT}, al
idtr: .word 0xfff
    .quad {IDT}
"""
    blob, syms = assemble(source, CODE)
    vm.memory.write(CODE, blob)
    vm.memory.write(IDT + 0x40 * 16, idt_gate(syms["handler"]))
    write_long_mode_tables(vm.memory)
    engine = vm.start(long_mode_state(CODE))
    assert vm.run(timeout=0.05).reason == TIMEOUT            # halted, nothing to wake it
    engine.inject_interrupt(0x40)
    assert engine.get_state().rip == syms["handler"]
    outcome = vm.run(timeout=1)
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, syms["after_hlt"] - CODE)


def test_timeout_on_a_port_io_storm(vm):
    blob, _ = assemble("spin:\nout 0x80, al\njmp spin\n", CODE)
    vm.memory.write(CODE, blob)
    write_long_mode_tables(vm.memory)
    vm.start(long_mode_state(CODE))
    assert vm.run(timeout=0.2).reason == TIMEOUT


@pytest.mark.parametrize("loop", ["spin:\ninc rax\njmp spin\n",                 # no exits at all
                                  "mov dx, 0x3fd\nspin:\nin al, dx\njmp spin\n"])   # a port-polling loop
def test_a_signal_reaches_the_main_thread_promptly(vm, loop):
    """Ctrl-C must interrupt run(): the watchdog ends each emu_start after TICK, and a
    signal caught at a callback's entry (where ctypes would swallow it) is re-raised."""
    import signal

    def interrupt(*_):
        raise KeyboardInterrupt
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        blob, _ = assemble(loop, CODE)
        vm.memory.write(CODE, blob)
        write_long_mode_tables(vm.memory)
        vm.start(long_mode_state(CODE))
        for _ in range(3):
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            with pytest.raises(KeyboardInterrupt):
                vm.run(timeout=60)          # (a lost interrupt would end in a TIMEOUT instead)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_a_resumed_run_does_not_repeat_instructions(vm, monkeypatch):
    """Stops from another thread (the watchdog) must never re-execute a read-modify-write,
    as unicorn's own timeout= stops do."""
    monkeypatch.setattr(unicorn_engine, "TICK", 0.0005)
    source = """
    mov rbx, 0x500000
    xor ecx, ecx
loop:
    inc qword ptr [rbx]
    inc rcx
    cmp rcx, 5000000
    jne loop
    cli
    hlt
"""
    outcome, _ = run_code(vm, source)
    assert outcome.reason == HALT
    assert vm.memory.read_u64(0x500000) == 5_000_000
    assert vm.engine.exit_counts()["slice"] > 50


# --- state ---------------------------------------------------------------------------------------
def test_pvh_entry_state_runs_32_bit_code(vm):
    vm.memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
    source = f"""
    mov eax, ebx                    # &start_info in EBX
    shr eax, 8
    out {EXIT_PORT}, al
"""
    blob, _ = assemble(source, CODE, bits=32)
    vm.memory.write(CODE, blob)
    engine = vm.start(pvh.entry_state(CODE, 0x6000))
    state = engine.get_state()
    assert state.mode() == "protected (32-bit)" and state.cs.selector == pvh.BOOT_CS
    assert state.tr.selector == pvh.BOOT_TR and state.efer == 0
    outcome = vm.run()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x60)


def test_32_bit_guest_enters_long_mode_itself(vm):
    """The path the guest kernel takes: PVH 32-bit entry -> PAE paging -> EFER.LME -> 64-bit."""
    vm.memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
    write_long_mode_tables(vm.memory)
    source = f"""
    lgdt [gdtr]
    mov eax, cr4
    or eax, 0x20
    mov cr4, eax
    mov eax, {PML4}
    mov cr3, eax
    mov ecx, 0xC0000080
    rdmsr
    or eax, 0x100
    wrmsr
    mov eax, cr0
    or eax, 0x80000000
    mov cr0, eax
    jmp 0x08:long64
gdtr: .word 55
    .long {GDT}
.code64
long64:
    mov rax, 0x123456789
    shr rax, 28
    out {EXIT_PORT}, al
"""
    blob, _ = assemble(source, CODE, bits=32)
    vm.memory.write(CODE, blob)
    vm.start(pvh.entry_state(CODE, 0x6000))
    outcome = vm.run()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x12)
    state = vm.engine.get_state()
    assert state.mode() == "long (64-bit)" and state.efer & EFER_LMA


def real_mode_state(cs_selector, cs_base, ip):
    code = Segment(selector=cs_selector, base=cs_base, limit=0xFFFF, type=0xB)
    data = Segment(selector=0, base=0, limit=0xFFFF, type=0x3)
    state = CpuState(rip=ip, cs=code, ds=data, es=data, fs=data, gs=data, ss=data, cr0=CR0_ET,
                     gdt_base=0, gdt_limit=0xFFFF, idt_base=0, idt_limit=0x3FF)
    state.regs["rsp"] = 0x7000
    return state


def test_reset_vector_state_round_trips(vm):
    engine = vm.start(real_mode_state(0xF000, 0xFFFF_0000, 0xFFF0))
    back = engine.get_state()
    assert back.mode() == "real" and back.bits() == 16
    assert (back.cs.selector, back.cs.base, back.rip) == (0xF000, 0xFFFF_0000, 0xFFF0)


def test_real_mode_code_and_ivt_interrupt(vm):
    # 16-bit code at F000:E000 (physical 0xFE000); int 0x21 -> handler at 0000:0x600.
    main = f"""
    mov ax, 0x1234
    int 0x21
    mov al, bl
    out {EXIT_PORT}, al
"""
    handler = """
    mov bl, 0x42
    iret
"""
    blob, _ = assemble(main, 0xE000, bits=16)
    hblob, _ = assemble(handler, 0x600, bits=16)
    vm.memory.write(0xFE000, blob)
    vm.memory.write(0x600, hblob)
    vm.memory.write(0x21 * 4, struct.pack("<HH", 0x600, 0))
    vm.start(real_mode_state(0xF000, 0xF0000, 0xE000))
    outcome = vm.run()
    assert (outcome.reason, outcome.status) == (DEBUG_EXIT, 0x42)


# --- host writes ------------------------------------------------------------------------------------
def test_host_write_invalidates_translated_code(vm):
    source = f"""
    mov al, 1
    out {PROBE_PORT}, al
    cli
    hlt
"""
    changed = source.replace("mov al, 1", "mov al, 2")
    outcome, _ = run_code(vm, source)
    assert outcome.reason == HALT
    blob, _ = assemble(changed, CODE)
    vm.memory.write(CODE, blob)                 # paging is on, identity-mapped here
    assert not vm.engine.code_cache.flush_pending    # so the precise invalidation was used
    state = vm.engine.get_state()
    state.rip = CODE
    vm.engine.set_state(state)
    assert vm.run().reason == HALT
    assert [v for _, _, v in vm.probe.writes] == [1, 2]


def test_host_write_with_a_non_identity_mapping_is_dropped_by_physical_address(vm):
    # Run the code at linear 0x1_8000_0000 + x, mapped to physical CODE, which has no
    # identity mapping: the invalidation goes by physical address, with no flush.
    write_long_mode_tables(vm.memory)
    vm.memory.write(PDS, struct.pack("<Q", 0))             # unmap linear 0..2 MiB
    linear_base = 0x1_8000_0000
    long_mode.map_large_page(vm.memory, PML4, linear_base, CODE & ~0x1FFFFF, 0x15000, user=True)
    linear = linear_base + (CODE & 0x1FFFFF)
    source = f"mov al, 1\nout {PROBE_PORT}, al\ncli\nhlt\n"
    blob, _ = assemble(source, linear)
    vm.memory.write(CODE, blob)
    vm.start(long_mode_state(linear))
    assert vm.run().reason == HALT
    blob2, _ = assemble(source.replace("mov al, 1", "mov al, 3"), linear)
    vm.memory.write(CODE, blob2)
    assert not vm.engine.code_cache.flush_pending
    state = vm.engine.get_state()
    state.rip = linear
    vm.engine.set_state(state)
    assert vm.run().reason == HALT
    assert [v for _, _, v in vm.probe.writes] == [1, 3]


def test_engine_error_is_an_outcome(vm):
    outcome, _ = run_code(vm, "mov rax, 0xE0000000\njmp rax\n")
    assert outcome.reason == "engine-error"
    assert "0xe0000000" in outcome.detail and "rip=" in outcome.detail


def test_close_releases_the_engine(vm):
    run_code(vm, "cli\nhlt\n")
    engine = vm.engine
    engine.close()
    assert vm.control.kick is None
    vm.memory.write(CODE, b"\x90")             # the listener is gone or inert
    engine.close()
    vm.engine = None
