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
from vmm.arch.x86.exceptions import DB
from vmm.kvm import Kvm
from vmm.kvm import constants as kc
from vmm.kvm import ioctl_numbers as r
from vmm.kvm import structs as s
from vmm.engines.kvm_debug import MAX_HW_BREAKPOINTS, guest_debug_control

from test_debug_support import COUNT_LOOP, ENTRY, LOOP_BODY, synthetic_vm


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
