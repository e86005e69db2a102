"""The engine-neutral vCPU state of a snapshot: what both engines save and load, as JSON.

    {"cpu": CpuState as a dict (cpu_state_to_json),
     "fpu": {fcw, fsw, ftw, fop, fip, fdp, st: [8 x 10 bytes hex], mxcsr, xmm: [16 x 16 bytes hex]},
     "msrs": {"0xc0000082": value, ...}      the MSRs guests program (SNAPSHOT_MSRS)
     "tsc": the guest's time-stamp counter,
     "halted": in HLT, waiting for an interrupt,
     "interrupt_shadow": the instruction before was STI or MOV SS (no interrupt yet),
     "pending_interrupt": an external vector acknowledged but not yet delivered, or None,
     "pending_exception": {"vector", "error_code"} being delivered, or None}

The FPU part is the FXSAVE image's (Intel SDM vol. 1, 10.5.1): `st` in stack order (ST0
first), `ftw` the abridged tag (one bit per physical register, 1 = valid). KVM's kvm_fpu is
that image; unicorn keeps the full tag word and physical registers, and
unicorn_snapshot.py converts. There is no XSAVE state: our CPUID offers no AVX or XSAVE.
"""
from ...records import asdict
from .cpu_state import FPU_CONTROL_WORD_RESET, MXCSR_RESET, GENERAL_REGISTERS, SEGMENT_REGISTERS, CpuState, Segment
from . import msrs

IA32_TSC = 0x10
IA32_PAT = 0x277
FSW_TOP_SHIFT = 11
FSW_TOP_MASK = 7 << FSW_TOP_SHIFT
TAG_EMPTY = 3                     # a full tag word's value for an empty register
# The XSAVE image (Intel SDM vol. 1, 13.4): the FXSAVE area, then the header, whose first
# quadword XSTATE_BV says which components hold state; XRSTOR loads the others' init state.
XSAVE_HEADER_OFFSET = 512
XSTATE_X87, XSTATE_SSE = 1 << 0, 1 << 1

# The MSRs a guest programs and a snapshot keeps (FS/GS bases are in the segments).
SNAPSHOT_MSRS = (msrs.IA32_SYSENTER_CS, msrs.IA32_SYSENTER_ESP, msrs.IA32_SYSENTER_EIP, msrs.IA32_STAR,
                 msrs.IA32_LSTAR, msrs.IA32_CSTAR, msrs.IA32_FMASK, msrs.IA32_KERNEL_GS_BASE, IA32_PAT,
                 msrs.IA32_MISC_ENABLE)


class CpuFormatError(ValueError):
    """A vCPU state that does not have the shape above."""


def cpu_state_to_json(state: CpuState) -> dict:
    return asdict(state)


def cpu_state_from_json(data) -> CpuState:
    """A CpuState from cpu_state_to_json's dict; every field checked to be an integer."""
    if not isinstance(data, dict):
        raise CpuFormatError("cpu: not an object")
    try:
        regs = data["regs"]
        state = CpuState(regs={name: _int(regs[name], name) for name in GENERAL_REGISTERS})
        for name in ("rip", "rflags", "gdt_base", "gdt_limit", "idt_base", "idt_limit", "cr0", "cr2", "cr3",
                     "cr4", "efer"):
            setattr(state, name, _int(data[name], name))
        fields = Segment.__record_fields__
        for name in SEGMENT_REGISTERS:
            setattr(state, name, Segment(**{f: _int(data[name][f], f"{name}.{f}") for f in fields}))
    except (KeyError, TypeError) as exc:
        raise CpuFormatError(f"cpu: field {exc} is missing") from None
    return state


def _int(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << 64:
        raise CpuFormatError(f"cpu: {what} is not a 64-bit unsigned integer")
    return value


def reset_fpu() -> dict:
    """The FPU as our engines start it (FNINIT, MXCSR's reset value)."""
    return {"fcw": FPU_CONTROL_WORD_RESET, "fsw": 0, "ftw": 0, "fop": 0, "fip": 0, "fdp": 0,
            "st": [bytes(10).hex()] * 8, "mxcsr": MXCSR_RESET, "xmm": [bytes(16).hex()] * 16}


def check_fpu(fpu) -> dict:
    """The FPU part, checked: integers where integers go, 8 x 10 and 16 x 16 bytes."""
    if not isinstance(fpu, dict):
        raise CpuFormatError("fpu: not an object")
    for name in ("fcw", "fsw", "ftw", "fop", "fip", "fdp", "mxcsr"):
        _int(fpu.get(name), f"fpu.{name}")
    for name, count, size in (("st", 8, 10), ("xmm", 16, 16)):
        values = fpu.get(name)
        try:
            if len(values) != count or any(len(bytes.fromhex(v)) != size for v in values):
                raise ValueError
        except (TypeError, ValueError):
            raise CpuFormatError(f"fpu.{name}: {count} values of {size} bytes in hex expected") from None
    return fpu


def abridged_tag(full: int) -> int:
    """FXSAVE's tag byte from a full x87 tag word: bit i set where register i is not empty."""
    return sum(1 << i for i in range(8) if (full >> (2 * i)) & 3 != TAG_EMPTY)


def full_tag(abridged: int) -> int:
    """A full tag word from FXSAVE's byte (valid registers as 00: only empty matters to a load)."""
    return sum(TAG_EMPTY << (2 * i) for i in range(8) if not abridged >> i & 1)


def check_msrs(values) -> dict:
    """{index: value} from the snapshot's {"0x...": value}."""
    if not isinstance(values, dict):
        raise CpuFormatError("msrs: not an object")
    try:
        return {int(key, 16): _int(value, f"msr {key}") for key, value in values.items()}
    except ValueError:
        raise CpuFormatError("msrs: the keys are not hexadecimal MSR numbers") from None


def msrs_to_json(values: dict) -> dict:
    return {f"{index:#x}": value for index, value in sorted(values.items())}
