"""The guest-debug part of the KVM binding (vmm/kvm: KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG,
KVM_GET/SET_MP_STATE, KVM_TRANSLATE) and what it does on this host.

The expected ABI numbers were printed by a C program built against /usr/include/linux/kvm.h.
The live tests pin down the facts the debugger is built on: single-stepping gives one
KVM_EXIT_DEBUG per instruction with DR6.BS, and an execution breakpoint in DR0 stops
before the instruction with DR6.B0.
"""
import ctypes

import pytest

from vmm.arch.x86.debug_registers import DR6_B0, DR6_BS
from vmm.arch.x86.exceptions import BP, DB
from vmm.kvm import Kvm
from vmm.kvm import constants as kc
from vmm.kvm import ioctl_numbers as r
from vmm.kvm import structs as s
from vmm.debug.target import SIGTRAP, DebugTarget
from vmm.engines import kvm_features
from vmm.engines.kvm_debug import MAX_HW_BREAKPOINTS, KvmDebug, guest_debug_control
from vmm.memory import GuestMemory
from vmm.outcome import DEBUG_EXIT, DEBUG_STOP, Outcome, RunControl

from test_debug_support import (COUNT_LOOP, ENTRY, LOOP_BODY, RAM_SIZE, exit_with, long_mode_state, synthetic_vm,
                                u64, write_long_mode_tables)


def test_guest_debug_abi():
    assert ctypes.sizeof(s.KvmGuestDebug) == 72 and s.KvmGuestDebug.arch.offset == 8
    assert ctypes.sizeof(s.KvmRunDebug) == 32
    assert (s.KvmRunDebug.pc.offset, s.KvmRunDebug.dr6.offset, s.KvmRunDebug.dr7.offset) == (8, 16, 24)
    assert s.KvmRun.debug.offset == 32 and ctypes.sizeof(s.KvmRun) == 2352
    assert ctypes.sizeof(s.KvmMpState) == 4 and ctypes.sizeof(s.KvmTranslation) == 24
    assert r.KVM_SET_GUEST_DEBUG == 0x4048AE9B
    assert (r.KVM_GET_MP_STATE, r.KVM_SET_MP_STATE) == (0x8004AE98, 0x4004AE99)
    assert r.KVM_TRANSLATE == 0xC018AE85


def test_guest_debug_control_programs_debug_registers():
    assert guest_debug_control(False, ()) == (0, [0] * 8)           # nothing to catch: debugging off
    control, regs = guest_debug_control(False, {0x1000, 0x2000})
    assert control == s.KVM_GUESTDBG_ENABLE | s.KVM_GUESTDBG_USE_HW_BP
    assert regs[:2] == [0x1000, 0x2000] and regs[7] == 0x400 | 0x200 | 0b1010
    control, regs = guest_debug_control(True, ())
    assert control == s.KVM_GUESTDBG_ENABLE | s.KVM_GUESTDBG_SINGLESTEP and regs == [0] * 8
    control, _ = guest_debug_control(False, set(range(MAX_HW_BREAKPOINTS + 1)))
    assert control & s.KVM_GUESTDBG_SINGLESTEP                      # five: matched by stepping


def test_capabilities(requires_kvm):
    with Kvm() as kvm:
        assert kvm.check_extension(kc.KVM_CAP_SET_GUEST_DEBUG) > 0
        flags = kvm.check_extension(kc.KVM_CAP_SET_GUEST_DEBUG2)
    if flags:                                                       # Linux 5.17+: the supported flags
        assert flags & s.KVM_GUESTDBG_SINGLESTEP and flags & s.KVM_GUESTDBG_USE_HW_BP


class Hook:
    """A debug hook that records every KVM_EXIT_DEBUG and goes on."""

    def __init__(self):
        self.exits = []

    def on_debug_exit(self, exception, pc, dr6):
        self.exits.append((exception, pc, dr6))
        return None

    def on_kick(self, halted):
        return None


def test_single_step_exits_once_per_instruction(requires_kvm):
    with synthetic_vm("kvm", COUNT_LOOP) as g:
        hook = Hook()
        g.engine.set_debug_hook(hook)
        g.engine._vcpu.set_guest_debug(s.KVM_GUESTDBG_ENABLE | s.KVM_GUESTDBG_SINGLESTEP)
        outcome = g.engine.run(10)
        assert outcome.reason == "debug-exit" and outcome.status == 7
    # mov ecx; 5 x (inc, dec, jnz); mov eax; the out ends the run before its step exit.
    assert len(hook.exits) == 1 + 5 * 3 + 1
    assert all(exception == DB and dr6 & DR6_BS for exception, _, dr6 in hook.exits)
    assert [pc for _, pc, _ in hook.exits[:4]] == [LOOP_BODY, ENTRY + 8, ENTRY + 10, LOOP_BODY]
    assert g.engine.exit_counts()["debug"] == len(hook.exits)


@pytest.mark.kvm_feature(kvm_features.HW_BREAKPOINTS)
def test_hardware_breakpoint_hit(requires_kvm):
    class StopAtBreakpoint(Hook):
        def on_debug_exit(self, exception, pc, dr6):
            super().on_debug_exit(exception, pc, dr6)
            from vmm.outcome import Outcome
            return Outcome("debug-stop", rip=pc)

    with synthetic_vm("kvm", COUNT_LOOP) as g:
        hook = StopAtBreakpoint()
        g.engine.set_debug_hook(hook)
        control, regs = guest_debug_control(False, {LOOP_BODY})
        g.engine._vcpu.set_guest_debug(control, regs)
        outcome = g.engine.run(10)
        state = g.engine.get_state()
        g.engine.set_debug_hook(None)
        assert outcome.reason == "debug-stop" and outcome.rip == LOOP_BODY
        assert state.rip == LOOP_BODY and state.regs["rbx"] == 0        # inc rbx has not run
        assert hook.exits == [(DB, LOOP_BODY, hook.exits[0][2])]
        assert hook.exits[0][2] & DR6_B0
        assert g.engine.run(10).status == 7                             # debugging off: runs to the end


def test_mp_state_and_translate(requires_kvm):
    with synthetic_vm("kvm", COUNT_LOOP) as g:
        vcpu = g.engine._vcpu
        assert vcpu.get_mp_state() == kc.KVM_MP_STATE_RUNNABLE
        vcpu.set_mp_state(kc.KVM_MP_STATE_RUNNABLE)
        assert vcpu.translate(ENTRY + 0x123) == ENTRY + 0x123           # identity-mapped
        assert vcpu.translate(0x4000_0000) is None                      # beyond the 4 MiB mapped


@pytest.mark.parametrize("wanted", [0, 1])
def test_setting_guest_debug_off_is_harmless(requires_kvm, wanted):
    with synthetic_vm("kvm", COUNT_LOOP) as g:
        g.engine._vcpu.set_guest_debug(s.KVM_GUESTDBG_ENABLE if wanted else 0)
        assert g.engine.run(10).status == 7


# --- software breakpoints (int3) and how KvmDebug chooses its breakpoints --------------------------
class FakeVcpu:
    def __init__(self):
        self.settings = []              # every KVM_SET_GUEST_DEBUG (control, debugreg)

    def set_guest_debug(self, control, debugreg=()):
        self.settings.append((control, list(debugreg)))

    def get_sregs(self):
        state, sregs = long_mode_state(), s.KvmSregs()
        sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer = state.cr0, state.cr3, state.cr4, state.efer
        return sregs


class FakeKvmEngine:
    """What KvmDebug asks of KvmEngine; `run` is called as the engine's run(), with guest
    memory as it is during the run."""
    name = "kvm"

    def __init__(self, memory, missing, run):
        self.memory, self._missing, self._run = memory, missing, run
        self.control = RunControl()
        self._kvm = type("FakeKvm", (), {"check_extension": lambda self, cap: 0})()
        self._vcpu = FakeVcpu()
        self.hook = self.after_write = None

    def missing_features(self):
        return dict(self._missing)

    def set_debug_hook(self, hook):
        self.hook = hook

    def get_state(self):
        return long_mode_state()

    def run(self, timeout, after_write=None):
        self.after_write = after_write
        return self._run(self)


def run_fake_target(missing, breakpoints, run):
    with GuestMemory(RAM_SIZE) as memory:
        write_long_mode_tables(memory)
        memory.write(ENTRY, COUNT_LOOP)
        engine = FakeKvmEngine(memory, missing, run)
        debug = KvmDebug(engine)
        target = DebugTarget(debug)
        for address in breakpoints:
            target.add_breakpoint(address)
        stop = target.resume()
        return engine, debug, stop, memory.read(ENTRY, len(COUNT_LOOP))


def test_target_uses_int3_where_kvm_reports_it():
    seen = {}

    def run(engine):
        seen["byte"] = engine.memory.read(LOOP_BODY, 1)
        return engine.hook.on_debug_exit(BP, LOOP_BODY, 0)

    engine, debug, stop, code = run_fake_target({}, [LOOP_BODY], run)
    assert seen["byte"] == b"\xcc" and code == COUNT_LOOP               # in place for the run only
    control, _ = engine._vcpu.settings[-1]
    assert control & s.KVM_GUESTDBG_USE_SW_BP and not control & (s.KVM_GUESTDBG_USE_HW_BP | s.KVM_GUESTDBG_SINGLESTEP)
    assert stop.signal == SIGTRAP and not debug.soft.inserted


def test_target_uses_debug_registers_without_int3():
    seen = {}

    def run(engine):
        seen["byte"] = engine.memory.read(LOOP_BODY, 1)
        return Outcome(DEBUG_STOP, rip=LOOP_BODY)

    engine, debug, stop, _ = run_fake_target({kvm_features.SW_BREAKPOINTS: "kvm_pvm"}, [LOOP_BODY], run)
    assert debug.soft is None and seen["byte"] == COUNT_LOOP[5:6]       # memory untouched
    control, debugreg = engine._vcpu.settings[-1]
    assert control & s.KVM_GUESTDBG_USE_HW_BP and not control & s.KVM_GUESTDBG_USE_SW_BP
    assert debugreg[0] == LOOP_BODY and stop.signal == SIGTRAP


def test_target_steps_to_what_takes_no_int3_where_debug_registers_fail():
    """Outside RAM no int3 fits; with no working debug registers that breakpoint is found by
    single-stepping, the step set again after each port or MMIO write (a KVM may have lost it)."""
    outside = ENTRY + RAM_SIZE                              # beyond the 4 MiB the page tables map

    def run(engine):
        engine.after_write()                                # as after an OUT
        return engine.hook.on_debug_exit(BP, LOOP_BODY, 0)

    engine, debug, stop, _ = run_fake_target({kvm_features.HW_BREAKPOINTS: "TCG"}, [LOOP_BODY, outside], run)
    (control, _), again = engine._vcpu.settings[-2:]
    assert control & s.KVM_GUESTDBG_SINGLESTEP and control & s.KVM_GUESTDBG_USE_SW_BP
    assert again == engine._vcpu.settings[-2]                     # set again after the OUT
    assert debug._scan == {outside} and stop.signal == SIGTRAP


def test_target_steps_to_every_breakpoint_where_neither_kind_works():
    """KVM nested in QEMU 7.2's TCG: neither int3 nor the debug registers stop the guest."""
    engine, debug, stop, code = run_fake_target(
        {kvm_features.HW_BREAKPOINTS: "TCG", kvm_features.SW_BREAKPOINTS: "TCG"}, [LOOP_BODY],
        lambda engine: engine.hook.on_debug_exit(DB, LOOP_BODY, DR6_BS))
    control, _ = engine._vcpu.settings[-1]
    assert control == s.KVM_GUESTDBG_ENABLE | s.KVM_GUESTDBG_SINGLESTEP and code == COUNT_LOOP
    assert debug._scan == {LOOP_BODY} and stop.signal == SIGTRAP


def test_a_guests_own_int3_goes_back_to_the_guest():
    def run(engine):
        assert engine.hook.on_debug_exit(BP, ENTRY + 0x30, 0) is None     # not ours: goes on
        return Outcome(DEBUG_EXIT, status=7)

    engine, _, stop, _ = run_fake_target({}, [LOOP_BODY], run)
    (first, _), (again, _) = engine._vcpu.settings[-2:]
    assert again == first | s.KVM_GUESTDBG_INJECT_BP and stop.outcome.status == 7


# A long-mode guest with an IDT whose #BP handler reports the pushed RIP on port 0x80:
#   ENTRY+0x00: int3 ; mov eax, 7 ; out 0xf4, eax
#   ENTRY+0x40: mov rax, [rsp] ; out 0x80, eax ; mov eax, 9 ; out 0xf4, eax
IDT_ADDR = 0x3000
BP_HANDLER = ENTRY + 0x40
OWN_INT3 = (b"\xcc" + exit_with(7)).ljust(0x40, b"\x90") + b"\x48\x8b\x04\x24" + b"\xe7\x80" + exit_with(9)


def interrupt_gate(handler: int, selector: int = 0x08) -> bytes:
    """A 64-bit interrupt gate (present, DPL 0)."""
    low = (handler & 0xFFFF) | selector << 16 | 0x8E << 40 | ((handler >> 16) & 0xFFFF) << 48
    return u64(low) + u64(handler >> 32)


class PortRecorder:
    def __init__(self):
        self.values = []

    def read(self, offset, size):
        return 0

    def write(self, offset, size, value):
        self.values.append(value)


@pytest.mark.kvm_feature(kvm_features.SW_BREAKPOINTS)
def test_int3_exits_to_the_vmm_and_the_guests_own_goes_to_its_idt():
    """With a breakpoint of ours elsewhere (so KVM reports every int3), the guest's own int3
    still reaches its #BP handler, with the return address after the int3."""
    with synthetic_vm("kvm", OWN_INT3) as g:
        g.memory.write(IDT_ADDR + 3 * 16, interrupt_gate(BP_HANDLER))
        state = g.engine.get_state()
        state.idt_base, state.idt_limit = IDT_ADDR, 4 * 16 - 1
        g.engine.set_state(state)
        recorder = PortRecorder()
        g.ports.register(0x80, 1, recorder)
        target = DebugTarget(g.engine.debug())
        target.add_breakpoint(BP_HANDLER)
        stop = target.resume()
        assert stop.signal == SIGTRAP and target.read_state().rip == BP_HANDLER       # our int3
        assert target.read_memory(BP_HANDLER, 4) == OWN_INT3[0x40:0x44]             # hidden between runs
        assert target.read_memory(ENTRY, 1) == b"\xcc"                               # the guest's own
        target.clear_breakpoints()
        stop = target.resume()
        target.close()
    assert stop.outcome.reason == DEBUG_EXIT and stop.outcome.status == 9
    assert recorder.values == [ENTRY + 1]
