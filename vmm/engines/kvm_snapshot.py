"""The KVM engine's part of a snapshot: its vCPU in the engine-neutral format
(arch/x86/cpu_snapshot.py), its in-kernel interrupt platform (kvm_platform.py), a paused
VM's clock, and KVM's dirty-page log.

vCPU: KVM_GET/SET_REGS and SREGS (kvm_state.py), KVM_GET/SET_FPU (the FXSAVE image the format
keeps; on load, KVM_SET_XSAVE first marks x87 and SSE as holding state), the MSRs of
SNAPSHOT_MSRS, the TSC, the MP state (halted or not) and KVM_GET/SET_VCPU_EVENTS (an
interrupt or exception KVM was injecting, and the STI / MOV SS shadow).

Pausing freezes guest time, as QEMU's `stop` does: freeze_clock() notes the TSC and stops the
local APIC timer, thaw_clock() sets the TSC back to the noted value (KVM_VCPU_TSC_OFFSET where
KVM has it, else a write of IA32_TSC), restarts the APIC timer with the time it had left, and
reloads the PIT, which also drops the ticks KVM counted to re-inject during the pause. (KVM
treats an IA32_TSC write within a second of where it expects the TSC as a resync, not a
jump: on a KVM without the offset attribute, a second short pause may show in guest time.)
"""
from ..arch.x86.cpu_snapshot import (IA32_TSC, SNAPSHOT_MSRS, XSAVE_HEADER_OFFSET, XSTATE_SSE, XSTATE_X87, check_fpu,
                                     check_msrs, cpu_state_from_json, cpu_state_to_json, msrs_to_json)
from ..arch.x86.cpuid import HYPERVISOR_TIMING_LEAF
from ..kvm import KvmError
from ..kvm import constants as kc
from ..kvm.structs import (KVM_VCPUEVENT_VALID_SHADOW, KVM_X86_SHADOW_INT_STI, KvmFpu)
from . import kvm_platform, kvm_state


def save_vcpu(engine) -> dict:
    vcpu = engine._vcpu
    values = vcpu.get_msrs(SNAPSHOT_MSRS + (IA32_TSC,))
    frozen = getattr(engine, "_frozen_clock", None)
    tsc = frozen["tsc"] if frozen else values.pop(IA32_TSC)
    values.pop(IA32_TSC, None)
    events = vcpu.get_events()
    exception = None
    if events.exception.injected or events.exception.pending:
        exception = {"vector": events.exception.nr,
                     "error_code": events.exception.error_code if events.exception.has_error_code else None}
    return {"cpu": cpu_state_to_json(kvm_state.get_state(vcpu)), "fpu": _save_fpu(vcpu.get_fpu()),
            "msrs": msrs_to_json(values), "tsc": tsc, "halted": vcpu.get_mp_state() == kc.KVM_MP_STATE_HALTED,
            "interrupt_shadow": bool(events.interrupt.shadow),
            "pending_interrupt": events.interrupt.nr if events.interrupt.injected and not events.interrupt.soft else None,
            "pending_exception": exception}


def load_vcpu(engine, state: dict) -> None:
    vcpu = engine._vcpu
    _match_tsc_rate(engine)
    kvm_state.set_state(vcpu, cpu_state_from_json(state.get("cpu")))
    _mark_fpu_in_use(vcpu)
    vcpu.set_fpu(_load_fpu(check_fpu(state.get("fpu"))))
    values = sorted((i, v) for i, v in check_msrs(state.get("msrs")).items() if i in SNAPSHOT_MSRS)
    done = vcpu.set_msrs(values)
    if done < len(values):
        from ..errors import VmmError
        index, value = values[done]
        raise VmmError(f"KVM refused MSR {index:#x} = {value:#x} from the snapshot")
    _set_tsc(vcpu, check_msrs({"0x10": state.get("tsc")})[IA32_TSC])
    vcpu.set_mp_state(kc.KVM_MP_STATE_HALTED if state.get("halted") else kc.KVM_MP_STATE_RUNNABLE)
    events = vcpu.get_events()
    events.flags = KVM_VCPUEVENT_VALID_SHADOW
    events.interrupt.shadow = KVM_X86_SHADOW_INT_STI if state.get("interrupt_shadow") else 0
    vector, exception = state.get("pending_interrupt"), state.get("pending_exception")
    events.interrupt.injected, events.interrupt.nr, events.interrupt.soft = 0, 0, 0
    if isinstance(vector, int) and 0 <= vector < 256:
        events.interrupt.injected, events.interrupt.nr = 1, vector
    events.exception.injected = events.exception.pending = events.exception.has_error_code = 0
    if isinstance(exception, dict) and isinstance(exception.get("vector"), int):
        error = exception.get("error_code")
        events.exception.injected, events.exception.nr = 1, exception["vector"] & 0xFF
        events.exception.has_error_code, events.exception.error_code = isinstance(error, int), error or 0
    vcpu.set_events(events)


def save_platform(engine) -> dict:
    frozen = getattr(engine, "_frozen_clock", None)
    page = None
    if frozen:                                   # the timer as it was when the VM paused
        page = engine._vcpu.get_lapic().regs
        kvm_platform.set_lapic_timer(page, *frozen["lapic_timer"])
    return kvm_platform.save(engine._vm, engine._vcpu, page)


def load_platform(engine, state: dict) -> None:
    kvm_platform.load(engine._vm, engine._vcpu, state)


# --- a paused VM's clock -------------------------------------------------------------------------
def freeze_clock(engine) -> None:
    vcpu = engine._vcpu
    if getattr(engine, "_frozen_clock", None) or vcpu is None:
        return
    page = vcpu.get_lapic()
    timer = kvm_platform.lapic_timer(page.regs)
    kvm_platform.set_lapic_timer(page.regs, 0, 0)        # stopped: it must not fire while paused
    vcpu.set_lapic(page)
    engine._frozen_clock = {"tsc": vcpu.get_msrs([IA32_TSC])[IA32_TSC], "lapic_timer": timer}


def thaw_clock(engine) -> None:
    frozen, engine._frozen_clock = getattr(engine, "_frozen_clock", None), None
    vcpu = engine._vcpu
    if not frozen or vcpu is None:
        return
    page = vcpu.get_lapic()
    kvm_platform.set_lapic_timer(page.regs, *frozen["lapic_timer"])
    vcpu.set_lapic(page)
    _set_tsc(vcpu, frozen["tsc"])
    engine._vm.set_pit2(engine._vm.get_pit2())           # restarts channel 0, drops re-injections


def _set_tsc(vcpu, tsc: int) -> None:
    """The guest's TSC reads `tsc` now and counts on from there."""
    if vcpu.has_tsc_offset():
        try:
            offset = vcpu.get_tsc_offset()
            now = vcpu.get_msrs([IA32_TSC])[IA32_TSC]
            vcpu.set_tsc_offset(offset + tsc - now)
            return
        except KvmError:                # kvm_pvm says it has the attribute, then refuses it (ENXIO)
            pass
    vcpu.set_msrs([(IA32_TSC, tsc)])


def _match_tsc_rate(engine) -> None:
    """A snapshot from the other engine may have told the guest another TSC rate (CPUID): scale
    KVM's to it where KVM can (KVM_CAP_TSC_CONTROL; kvm_pvm cannot, and the rates the engines
    measure differ by well under 0.1%)."""
    khz = engine.cpuid.lookup(HYPERVISOR_TIMING_LEAF)[0]
    if khz and khz != engine._vcpu.get_tsc_khz():
        engine._vcpu.set_tsc_khz(khz)


def idle(engine):
    watch = engine._halt_watch
    return None if watch is None else watch.blocking()


# --- the dirty-page log ----------------------------------------------------------------------------
def track_dirty_pages(engine) -> None:
    """Slot 0 (RAM) again, with KVM_MEM_LOG_DIRTY_PAGES; the log starts empty."""
    memory = engine.memory
    gpa, size, host_address, _ = memory.regions()[0]
    engine._vm.set_user_memory_region(0, gpa, size, host_address, kc.KVM_MEM_LOG_DIRTY_PAGES)
    engine._dirty_log = True


def dirty_pages(engine) -> bytes:
    from ..errors import VmmError
    if not getattr(engine, "_dirty_log", False):
        raise VmmError("KVM's dirty-page log is off (run with --snapshot-dirty)")
    return engine._vm.get_dirty_log(0, engine.memory.size // 4096)


# --- the FPU: kvm_fpu is the FXSAVE image the format keeps ----------------------------------------
def _save_fpu(fpu: KvmFpu) -> dict:
    return {"fcw": fpu.fcw, "fsw": fpu.fsw, "ftw": fpu.ftwx, "fop": fpu.last_opcode, "fip": fpu.last_ip,
            "fdp": fpu.last_dp, "st": [bytes(fpu.fpr[i])[:10].hex() for i in range(8)], "mxcsr": fpu.mxcsr,
            "xmm": [bytes(fpu.xmm[i]).hex() for i in range(16)]}


def _mark_fpu_in_use(vcpu) -> None:
    """KVM_SET_FPU writes the FXSAVE area of KVM's XSAVE image of the vCPU but not the header:
    on a vCPU that has not used them yet, XSTATE_BV's x87 and SSE bits are clear, and the
    guest would get their init state (XMM0-15 = 0, seen as a wrong CRC-32 after a snapshot
    taken inside an SSE loop). Setting the bits first makes KVM_SET_FPU's values count."""
    try:
        xsave = vcpu.get_xsave()
    except KvmError:                    # no KVM_CAP_XSAVE: KVM keeps FXSAVE, KVM_SET_FPU is all
        return
    xsave.region[XSAVE_HEADER_OFFSET // 4] |= XSTATE_X87 | XSTATE_SSE
    vcpu.set_xsave(xsave)


def _load_fpu(state: dict) -> KvmFpu:
    fpu = KvmFpu(fcw=state["fcw"] & 0xFFFF, fsw=state["fsw"] & 0xFFFF, ftwx=state["ftw"] & 0xFF,
                 last_opcode=state["fop"] & 0x7FF, last_ip=state["fip"], last_dp=state["fdp"],
                 mxcsr=state["mxcsr"] & 0xFFFF_FFFF)
    for i, value in enumerate(state["st"]):
        fpu.fpr[i][:10] = list(bytes.fromhex(value))
    for i, value in enumerate(state["xmm"]):
        fpu.xmm[i][:] = list(bytes.fromhex(value))
    return fpu
