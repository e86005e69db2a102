"""The software engine's part of a snapshot: its vCPU in the engine-neutral format
(arch/x86/cpu_snapshot.py), and its interrupt platform, whose models save themselves
(pc_platform.py).

unicorn keeps the x87 registers physically (FP0-7) with a full tag word; the format keeps
FXSAVE's image (ST0-7 in stack order, the abridged tag), so both are converted here. The
interrupt shadow is QEMU's HF_INHIBIT_IRQ. Nothing is ever in flight between two of the
engine's slices (it delivers interrupts itself, at once), so a saved state has no pending
event; one from KVM is delivered through the guest's IDT on load, as KVM would have.
"""
from ..arch.x86.cpu_snapshot import (FSW_TOP_MASK, FSW_TOP_SHIFT, SNAPSHOT_MSRS, abridged_tag, check_fpu, check_msrs,
                                     cpu_state_from_json, cpu_state_to_json, full_tag, msrs_to_json)
from ..outcome import SHUTDOWN, Outcome
from .unicorn_layout import HF_INHIBIT_IRQ


def save_vcpu(engine) -> dict:
    uc, hs = engine._uc, engine._hs
    state = cpu_state_to_json(engine.get_state())
    hs.save()
    return {"cpu": state, "fpu": _save_fpu(uc), "msrs": msrs_to_json({i: uc.msr_read(i) for i in SNAPSHOT_MSRS}),
            "tsc": engine.clock.tsc(), "halted": engine._halted, "interrupt_shadow": bool(hs.hflags & HF_INHIBIT_IRQ),
            "pending_interrupt": None, "pending_exception": None}


def load_vcpu(engine, vcpu: dict) -> None:
    """Load a saved vCPU. A pending event is delivered now; if that shuts the CPU down, the
    next run() says so."""
    uc, hs = engine._uc, engine._hs
    engine.set_state(cpu_state_from_json(vcpu.get("cpu")))
    _load_fpu(uc, check_fpu(vcpu.get("fpu")))
    for index, value in check_msrs(vcpu.get("msrs")).items():
        if index in SNAPSHOT_MSRS:
            uc.msr_write(index, value)
    engine.clock.set_tsc(check_msrs({"0x10": vcpu.get("tsc")})[0x10])
    hs.save()
    hs.hflags = hs.hflags | HF_INHIBIT_IRQ if vcpu.get("interrupt_shadow") else hs.hflags & ~HF_INHIBIT_IRQ
    hs.restore()
    engine._halted = bool(vcpu.get("halted"))
    exception, vector = vcpu.get("pending_exception"), vcpu.get("pending_interrupt")
    if isinstance(exception, dict) and isinstance(exception.get("vector"), int):
        error = exception.get("error_code")
        detail = engine._delivery.deliver_pending_exception(exception["vector"], error if isinstance(error, int) else None)
        engine._rip = engine._regs.read(engine._reg_rip)
        if detail:
            engine._run_end.outcome = Outcome(SHUTDOWN, rip=engine._rip, detail=detail)
    elif isinstance(vector, int) and 0 <= vector < 256:
        engine.inject_interrupt(vector)


def save_platform(engine) -> dict:
    return engine.platform.save_state()


def load_platform(engine, state: dict) -> None:
    engine.platform.load_state(state)


def idle(engine) -> bool:
    return engine._halted


def freeze_clock(engine) -> None:
    """A paused VM's guest time stands still (guest_clock.py)."""
    engine.clock.freeze()


def thaw_clock(engine) -> None:
    engine.clock.thaw()


def _save_fpu(uc) -> dict:
    from . import unicorn_lib as x
    fsw = uc.reg_read(x.UC_X86_REG_FPSW)
    top = (fsw & FSW_TOP_MASK) >> FSW_TOP_SHIFT
    st = []
    for i in range(8):                       # ST(i) is physical register TOP+i
        mantissa, exponent = uc.reg_read(x.UC_X86_REG_FP0 + (top + i) % 8)
        st.append((mantissa.to_bytes(8, "little") + exponent.to_bytes(2, "little")).hex())
    return {"fcw": uc.reg_read(x.UC_X86_REG_FPCW), "fsw": fsw, "ftw": abridged_tag(uc.reg_read(x.UC_X86_REG_FPTAG)),
            "fop": uc.reg_read(x.UC_X86_REG_FOP), "fip": uc.reg_read(x.UC_X86_REG_FIP),
            "fdp": uc.reg_read(x.UC_X86_REG_FDP), "st": st, "mxcsr": uc.reg_read(x.UC_X86_REG_MXCSR),
            "xmm": [uc.reg_read(x.UC_X86_REG_XMM0 + i).to_bytes(16, "little").hex() for i in range(16)]}


def _load_fpu(uc, fpu: dict) -> None:
    from . import unicorn_lib as x
    top = (fpu["fsw"] & FSW_TOP_MASK) >> FSW_TOP_SHIFT
    uc.reg_write(x.UC_X86_REG_FPSW, fpu["fsw"] & 0xFFFF)
    uc.reg_write(x.UC_X86_REG_FPCW, fpu["fcw"] & 0xFFFF)
    uc.reg_write(x.UC_X86_REG_FPTAG, full_tag(fpu["ftw"] & 0xFF))
    for i, value in enumerate(fpu["st"]):
        raw = bytes.fromhex(value)
        uc.reg_write(x.UC_X86_REG_FP0 + (top + i) % 8,
                     (int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:10], "little")))
    uc.reg_write(x.UC_X86_REG_FOP, fpu["fop"] & 0x7FF)
    uc.reg_write(x.UC_X86_REG_FIP, fpu["fip"])
    uc.reg_write(x.UC_X86_REG_FDP, fpu["fdp"])
    uc.reg_write(x.UC_X86_REG_MXCSR, fpu["mxcsr"] & 0xFFFF_FFFF)
    for i, value in enumerate(fpu["xmm"]):
        uc.reg_write(x.UC_X86_REG_XMM0 + i, int.from_bytes(bytes.fromhex(value), "little"))
