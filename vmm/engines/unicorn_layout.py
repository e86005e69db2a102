"""Where unicorn 2.1.4 keeps the CPU state and the flags the engine edits: the offsets of
CPUX86State's fields in a uc_context blob, of stop_request in struct uc_struct and of the
callback pointer in struct hook (unicorn_binding.py uses them).

The first fields of CPUX86State have no configuration-dependent members before them: their
offsets are fixed and only checked. The others are found by experiments on throwaway
engines, once per process (layout()), so that a different unicorn build fails loudly at
UnicornEngine.probe() instead of corrupting a guest.
"""
import struct
from ..records import record

from ..arch.x86.exceptions import GP
from ..arch.x86.msrs import IA32_EFER
from . import unicorn_binding as binding
from .unicorn_binding import SEGMENT_CACHE, Unsupported

# --- QEMU's names for the pieces of CPUX86State we touch (qemu/target/i386/cpu.h) ------------
R_ES, R_CS, R_SS, R_DS, R_FS, R_GS = range(6)
SEGMENT_INDEX = {"es": R_ES, "cs": R_CS, "ss": R_SS, "ds": R_DS, "fs": R_FS, "gs": R_GS}
# QEMU's regs[] order: RAX RCX RDX RBX RSP RBP RSI RDI R8..R15.
QEMU_REG_ORDER = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                  "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
REG_INDEX = {name: i for i, name in enumerate(QEMU_REG_ORDER)}
RSP_INDEX = REG_INDEX["rsp"]

HF_CPL_MASK = 3
HF_INHIBIT_IRQ = 1 << 3     # the STI / MOV SS interrupt shadow (one instruction)
HF_CS32 = 1 << 4
HF_SS32 = 1 << 5
HF_ADDSEG = 1 << 6
HF_PE = 1 << 7
HF_LMA = 1 << 14
HF_CS64 = 1 << 15


@record
class Layout:
    """Byte offsets into a uc_context blob (relative to the start of CPUX86State, except
    `header`), into struct uc_struct and into struct hook."""
    header: int             # size of struct uc_context's own fields before the CPU state
    size: int               # size of the CPU state in the blob
    regs: int = 0
    eip: int = 128
    hflags: int = 176
    segs: int = 184         # SegmentCache segs[6]
    ldt: int = 328
    tr: int = 352
    gdt: int = 376
    idt: int = 400
    cr: int = 424           # target_ulong cr[9]
    efer: int = 0           # found by calibration (after the MPX fields)
    error_code: int = 0
    exception_is_int: int = 0
    old_exception: int = 0
    stop_request: int = 0   # uc_struct: bool stop_request (found next to emu_counter)
    hook_callback: int = 0  # struct hook: void *callback, followed by void *user_data


def _u32(blob, off):
    return struct.unpack_from("<I", blob, off)[0]


def _u64(blob, off):
    return struct.unpack_from("<Q", blob, off)[0]


_layout = None


def layout() -> Layout:
    """The calibrated Layout, measured once per libunicorn file (vmm/host/facts.py remembers
    it between runs: calibrating takes six throwaway engines). Raises Unsupported."""
    global _layout
    if _layout is None:
        from ..host.facts import file_identity, remembered
        from .unicorn_lib import LIBRARY_PATH

        def measure():
            found = calibrate()
            return " ".join(f"{name}={getattr(found, name)}" for name in Layout.__record_fields__)
        text = remembered(f"unicorn-layout lib={file_identity(LIBRARY_PATH)}", measure)
        try:
            _layout = Layout(**{name: int(value) for name, _, value in
                                (item.partition("=") for item in text.split())})
        except (TypeError, ValueError):     # a garbled line: calibrate again
            _layout = calibrate()
    return _layout


def calibrate() -> Layout:
    """Check the fixed CPUX86State offsets (the struct's first fields have no configuration-
    dependent members before them) and find the others by experiment."""
    from . import unicorn_lib as x
    from .unicorn_lib import UC_ARCH_X86, UC_HOOK_INTR, UC_MODE_64, Uc, UcError
    engines = []

    def new_uc():
        engines.append(Uc(UC_ARCH_X86, UC_MODE_64))
        return engines[-1]
    try:
        return _calibrate(new_uc, UC_HOOK_INTR, x)
    except (ImportError, AttributeError, UcError, ValueError, AssertionError, IndexError,
            struct.error) as exc:
        raise Unsupported(f"unicorn's internal x86 layout is not the one this VMM knows "
                          f"(calibration failed: {exc!r}); the unicorn engine needs unicorn 2.1.4") from exc
    finally:
        for engine in engines:
            engine.close()


def _calibrate(new_uc, hook_intr, x) -> Layout:
    marker_rax, marker_rip = 0x1122_3344_5566_7788, 0x0000_7766_5544_3320
    u = new_uc()
    u.mem_map(0, 0x10000)
    u.reg_write(x.UC_X86_REG_RAX, marker_rax)
    u.reg_write(x.UC_X86_REG_RBX, marker_rax ^ 0xFF)
    u.reg_write(x.UC_X86_REG_RIP, marker_rip)
    u.reg_write(x.UC_X86_REG_CS, 0x1234)
    u.reg_write(x.UC_X86_REG_SS, 0x2344)
    u.reg_write(x.UC_X86_REG_GDTR, (0, 0x7000, 0x37, 0))
    u.reg_write(x.UC_X86_REG_IDTR, (0, 0x8000, 0xFFF, 0))
    u.reg_write(x.UC_X86_REG_TR, (0x40, 0xA000, 0x67, 0x8B00))
    u.reg_write(x.UC_X86_REG_LDTR, (0x48, 0xB000, 0x17, 0x8200))
    u.reg_write(x.UC_X86_REG_CR3, 0x9000)
    efer_before = u.msr_read(IA32_EFER)
    blob_before = bytes(u.context_save())
    u.msr_write(IA32_EFER, 0x901)                    # SCE | LME | NXE; LMA stays from reset
    efer_after = u.msr_read(IA32_EFER)
    ctx = u.context_save()
    blob = bytes(ctx)
    header = blob.find(marker_rax.to_bytes(8, "little"))
    assert header >= 0, "RAX not found in the context blob"
    cpu = blob[header:]
    (efer,) = [o - header for o in range(header + 424, len(blob) - 8, 8)
               if _u64(blob_before, o) == efer_before and _u64(blob, o) == efer_after]
    lay = Layout(header=header, size=ctx.size, efer=efer)
    assert _u64(cpu, lay.regs + 8 * REG_INDEX["rbx"]) == marker_rax ^ 0xFF, "regs[] order"
    assert _u64(cpu, lay.eip) == marker_rip, "eip"
    assert _u32(cpu, lay.segs + 24 * R_CS) == 0x1234, "segs[CS]"
    assert _u32(cpu, lay.segs + 24 * R_SS) == 0x2344, "segs[SS]"
    assert SEGMENT_CACHE.unpack_from(cpu, lay.gdt)[1:3] == (0x7000, 0x37), "gdt"
    assert SEGMENT_CACHE.unpack_from(cpu, lay.idt)[1:3] == (0x8000, 0xFFF), "idt"
    assert SEGMENT_CACHE.unpack_from(cpu, lay.tr) == (0x40, 0xA000, 0x67, 0x8B00), "tr"
    assert SEGMENT_CACHE.unpack_from(cpu, lay.ldt) == (0x48, 0xB000, 0x17, 0x8200), "ldt"
    assert _u64(cpu, lay.cr + 8 * 3) == 0x9000, "cr[3]"
    assert _u32(cpu, lay.hflags) & (HF_LMA | HF_CS64 | HF_PE) == HF_LMA | HF_CS64 | HF_PE, "hflags"
    error_code, old_exception = _find_exception_fields(new_uc, hook_intr, x, header)
    is_int = error_code + 4                         # the next int in CPUX86State
    assert _exception_is_int_at(new_uc, hook_intr, header, is_int), "exception_is_int"
    return Layout(header=header, size=ctx.size, efer=efer, error_code=error_code, exception_is_int=is_int,
                  old_exception=old_exception, stop_request=_find_stop_request(new_uc),
                  hook_callback=_find_hook_callback(new_uc))


def _intr_snapshot(new_uc, hook_intr, code: bytes, gdt=None):
    """Run `code` at 0x1000 and return (vector, blob before, blob inside the INTR hook)."""
    u = new_uc()
    u.mem_map(0, 0x10000)
    u.mem_write(0x1000, code)
    if gdt:
        from . import unicorn_lib as x
        u.reg_write(x.UC_X86_REG_GDTR, (0, 0x7000, gdt, 0))
    before = bytes(u.context_save())
    seen = {}

    def on_intr(uc, vector, _):
        seen["vector"], seen["blob"] = vector, bytes(uc.context_save())
        uc.emu_stop()
    u.hook_add(hook_intr, on_intr)
    u.emu_start(0x1000, 0x1000 + len(code))
    return seen["vector"], before, seen["blob"]


def _find_exception_fields(new_uc, hook_intr, x, header):
    """#GP(selector) from loading DS with a selector beyond the GDT limit: the error code is
    the selector; old_exception goes from -1 to 13. Two selectors make the match unique."""
    found = []
    for selector in (0x1238, 0x2240):
        code = bytes([0x66, 0xB8]) + selector.to_bytes(2, "little") + bytes([0x8E, 0xD8])  # mov ax,sel; mov ds,ax
        vector, before, after = _intr_snapshot(new_uc, hook_intr, code, gdt=0x17)
        assert vector == GP, f"expected #GP, got {vector}"
        offsets = range(header + 424, len(after) - 4, 4)
        i32 = lambda b, o: struct.unpack_from("<i", b, o)[0]
        found.append(({o - header for o in offsets if i32(before, o) == 0 and i32(after, o) == selector},
                      {o - header for o in offsets if i32(before, o) == -1 and i32(after, o) == GP}))
    (error_code,) = found[0][0] & found[1][0]
    (old_exception,) = found[0][1] & found[1][1]
    return error_code, old_exception


def _exception_is_int_at(new_uc, hook_intr, header, offset) -> bool:
    vector, _, after = _intr_snapshot(new_uc, hook_intr, bytes([0xCD, 0x30]))   # int 0x30
    return vector == 0x30 and struct.unpack_from("<i", after, header + offset)[0] == 1


def _find_stop_request(new_uc) -> int:
    """uc_struct holds `size_t emu_counter, emu_count; int size_recur_mem; bool init_tcg,
    stop_request`. Find emu_counter by running an endless loop with count=K (it ends at K+1,
    next to emu_count = K), then check that the byte 21 bytes on is 1 after a run stopped by
    uc_emu_stop and 0 after a run that ended by HLT."""
    from .unicorn_lib import UC_HOOK_CODE
    u = new_uc()
    u.mem_map(0, 0x10000)
    u.mem_write(0x1000, bytes([0x48, 0xFF, 0xC0, 0xEB, 0xFB]))     # 1: inc rax; jmp 1b
    u.mem_write(0x2000, bytes([0xF4]))                              # hlt
    candidates = None
    for budget in (1234, 56789, 777):
        u.emu_start(0x1000, 1 << 63, count=budget)
        raw = binding.peek(binding.uc_struct_address(u), 4096)  # uc_struct is far larger than 4 KiB
        hits = {o for o in range(0, 4096 - 16, 8) if struct.unpack_from("<QQ", raw, o) == (budget + 1, budget)}
        candidates = hits if candidates is None else candidates & hits
    (emu_counter,) = candidates
    offset = emu_counter + 21
    flag = binding.bool_at(binding.uc_struct_address(u) + offset)
    u.emu_start(0x2000, 0)
    assert not flag.value, "stop_request after HLT"
    u.hook_add(UC_HOOK_CODE, lambda uc, *args: uc.emu_stop())
    u.emu_start(0x1000, 0)
    assert flag.value, "stop_request after uc_emu_stop"
    return offset


def _find_hook_callback(new_uc) -> int:
    """struct hook { int type, insn, refs, op, op_flags; bool to_delete; uint64_t begin, end;
    void *callback, *user_data; ... }: find callback next to a user_data marker."""
    marker = 0x5AFE_C0DE_0000_0001
    handle, callback = binding.block_hook_at_c_function(new_uc(), "uc_errno", user_data=marker)
    raw = binding.peek(handle, 56)
    (offset,) = [o for o in range(0, 56 - 8, 8) if struct.unpack_from("<QQ", raw, o) == (callback, marker)]
    return offset
