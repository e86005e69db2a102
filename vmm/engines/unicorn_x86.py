"""What unicorn 2.1.4 leaves out of x86 *system* emulation, and how the unicorn engine fills it in.

unicorn is QEMU's TCG with the system parts cut away. engines/unicorn.py needs these back, and
each piece below says which gap it fills and why it is done this way (the measurements are in
the shared notes, unicorn-2.1.4.md):

1. Hidden CPU state (`Layout`, `calibrate`, `HiddenState`). The public API cannot set a
   segment's hidden part in a 64-bit engine (reg_write of CS/DS/ES/SS sets only the selector),
   cannot raise the privilege level, does not expose an exception's error code, and never
   resets `old_exception` (so the second fault of a run becomes #DF and the third a "triple
   fault"). All of that lives in QEMU's CPUX86State, which uc_context_save/restore copy as a
   blob. We edit the blob. The offsets of the fields are checked or found at run time, once
   per process, by experiments on throwaway engines (`calibrate`), so a different build fails
   loudly at probe() instead of corrupting a guest.
2. Loading a CpuState (`X86System.load_state`): like KVM_SET_SREGS, every segment's
   descriptor cache is written into the blob and the hidden flags QEMU derives from them
   (CPL, CS32/SS32/CS64, ADDSEG) are recomputed the way cpu_x86_load_seg_cache does. Control
   registers go through reg_write, which runs QEMU's own update functions (PE, LMA, TLB).
   Real mode, 32-bit protected mode and long mode all load the same way; no GDT is needed.
3. Exceptions and interrupts (`X86System.deliver_exception`): unicorn hands every exception
   to UC_HOOK_INTR and ignores the guest's IDT. We deliver through the guest's own IDT the
   way the CPU does (SDM vol. 3 ch. 6): gate checks, the TSS RSP0/IST stack switch on a ring
   change, the frame, IF cleared for interrupt gates, CR2 kept for #PF. A fault raised while
   delivering follows the double-fault rules; a fault while delivering #DF is a triple
   fault, which we report instead of raising. #UD reaches us through UC_HOOK_INSN_INVALID.
4. `syscall` (`X86System.syscall`): unicorn only calls the hook and then adds 2 to RIP; we do
   what the instruction does (STAR/LSTAR/FMASK, RCX/R11, CPL 3 -> 0). sysret and iret are
   QEMU's own and work.
5. Exact stops (`StopSwitch`): unicorn's own ways to stop a run (timeout=, emu_stop from a
   hook or another thread) take effect after the next memory access, in the middle of an
   instruction, and a resumed run repeats that instruction (shared notes, WARNING). count=
   stops exactly, but its per-instruction counter costs 5-12x (measured: the guest's SHA-256
   program takes 3.4 s instead of 0.7 s). Instead, two UC_HOOK_BLOCK hooks call plain C
   functions of libunicorn at the start of every translated block: uc_errno (harmless)
   normally; to stop, the first hook's callback pointer is switched to uc_emu_stop, which
   then runs before the next block's first instruction, and the check that follows it in
   the block prologue ends the run right there: exact, resumable, from any thread. (Two
   hooks, because unicorn compiles a lone hook's callback address into the block.) Whether a
   run ended that way or by HLT is read from uc_struct.stop_request. The pointer can also
   name a callback that decides per block (`StopSwitch.watch`): the engine uses that to wait
   for an interrupt window (engines/unicorn.py).
6. Host writes into guest RAM (`X86System.invalidate_code`): unicorn does not notice them,
   and its ctl_remove_cache() takes a *virtual* address, translated as a code fetch through
   the guest's page tables with QEMU's fault path: a miss is swallowed but leaves CR2,
   error_code and old_exception changed. We call it only where our own page walk shows
   linear == physical, never from inside a translated block, and we undo those fields if it
   faulted anyway; else the engine flushes all translated code.
7. Callback overhead (`binding`, `raw_hook`, `raw_mmio_map`): the Python binding wraps every
   callback in two extra Python frames; port I/O is the exit hot path, so the engine
   registers plain ctypes callbacks with the C library itself, using the binding's own
   ctypes types (its internals, reached through `binding()` only).
8. No `until` address (`no_exit_address`): at the end of every emu_start, unicorn drops the
   translated block at `until - 1`, through the same virtual-address path as in 6. With
   paging on, that address faults in most guests; the swallowed fault then turns the guest's
   next #GP into #DF (seen with the guest kernel's `faults` program). "Exits" mode with an
   empty exit list has no such address; runs end by the stop switch or HLT.
"""
import ctypes
import struct
from dataclasses import dataclass
from types import SimpleNamespace

from ..arch.x86.cpu_state import (CR0_PE, CR0_PG, CR0_WP, CR4_PAE, EFER_LMA, EFER_NXE,
                                  GENERAL_REGISTERS, CpuState, Segment)
from ..errors import GuestMemoryError


class Unsupported(Exception):
    """This unicorn build does not look like the one the workarounds were written for."""


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

# Segment attribute bits as QEMU keeps them: the descriptor's high dword (SDM 3A fig. 3-8).
DESC_TYPE_SHIFT = 8
DESC_S = 1 << 12
DESC_DPL_SHIFT = 13
DESC_P = 1 << 15
DESC_L = 1 << 21
DESC_B = 1 << 22
DESC_G = 1 << 23
DESC_ATTRIBUTES = 0x00F0FF00        # type, S, DPL, P, AVL, L, D/B, G

# RFLAGS bits
TF, IF, NT, RF, VM, AC = 1 << 8, 1 << 9, 1 << 14, 1 << 16, 1 << 17, 1 << 18

# Exception vectors (SDM 3A table 6-1) and the double-fault classes (table 6-5).
DE, DB, BP, OF, UD, DF, TS, NP, SS_FAULT, GP, PF = 0, 1, 3, 4, 6, 8, 10, 11, 12, 13, 14
ERROR_CODE_VECTORS = frozenset({8, 10, 11, 12, 13, 14, 17, 21, 29, 30})
CONTRIBUTORY = frozenset({0, 10, 11, 12, 13})
MNEMONIC = {0: "#DE", 1: "#DB", 2: "NMI", 3: "#BP", 4: "#OF", 5: "#BR", 6: "#UD", 7: "#NM", 8: "#DF",
            10: "#TS", 11: "#NP", 12: "#SS", 13: "#GP", 14: "#PF", 16: "#MF", 17: "#AC",
            18: "#MC", 19: "#XM", 21: "#CP"}

# Where an exception comes from: raised by an instruction, INT n/INT3/INTO, or an external IRQ.
EXCEPTION, SOFTWARE, EXTERNAL = "exception", "software", "external"

CR4_PSE = 1 << 4
CR4_SMEP = 1 << 20

MSR_EFER = 0xC000_0080
MSR_STAR = 0xC000_0081
MSR_LSTAR = 0xC000_0082
MSR_FMASK = 0xC000_0084


def vector_name(vector: int) -> str:
    return MNEMONIC.get(vector, f"vector {vector:#x}")


# --- 1. Where the hidden state lives -------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Byte offsets into a uc_context blob (relative to the start of CPUX86State, except
    `header`), into struct uc_struct and into struct hook."""
    header: int             # size of struct uc_context's own fields before the CPU state
    size: int               # size of the CPU state in the blob
    regs: int = 0
    eip: int = 128
    hflags: int = 176
    segs: int = 184         # SegmentCache segs[6]: u32 selector, u64 base, u32 limit, u32 flags
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


SEGMENT_CACHE = struct.Struct("<I4xQII")    # 24 bytes


def _u32(blob, off):
    return struct.unpack_from("<I", blob, off)[0]


def _u64(blob, off):
    return struct.unpack_from("<Q", blob, off)[0]


_layout = None


def layout() -> Layout:
    """The calibrated Layout, measured once per process. Raises Unsupported."""
    global _layout
    if _layout is None:
        _layout = calibrate()
    return _layout


def binding():
    """The internals of unicorn's Python binding (2.1.x) the engine uses: the C library and
    the binding's ctypes callback types."""
    from unicorn.unicorn_py3 import unicorn as core
    from unicorn.unicorn_py3.arch import intel
    return SimpleNamespace(
        uclib=core.uclib, HOOK_INTR=core.HOOK_INTR_CFUNC, HOOK_INSN_INVALID=core.HOOK_INSN_INVALID_CFUNC,
        HOOK_MEM_INVALID=core.HOOK_MEM_INVALID_CFUNC, MMIO_READ=core.MMIO_READ_CFUNC,
        MMIO_WRITE=core.MMIO_WRITE_CFUNC, HOOK_INSN_IN=intel.HOOK_INSN_IN_CFUNC,
        HOOK_INSN_OUT=intel.HOOK_INSN_OUT_CFUNC, HOOK_INSN_SYSCALL=intel.HOOK_INSN_SYSCALL_CFUNC,
        HOOK_INSN_CPUID=intel.HOOK_INSN_CPUID_CFUNC, HOOK_BLOCK=core.HOOK_CODE_CFUNC)


def calibrate() -> Layout:
    """Check the fixed CPUX86State offsets (the struct's first fields have no configuration-
    dependent members before them) and find the others by experiment."""
    from unicorn import Uc, UcError, UC_ARCH_X86, UC_MODE_64, UC_HOOK_INTR
    from unicorn import x86_const as x
    try:
        binding()
        return _calibrate(Uc, UC_ARCH_X86, UC_MODE_64, UC_HOOK_INTR, x)
    except (ImportError, AttributeError, UcError, ValueError, AssertionError, IndexError,
            struct.error) as exc:
        raise Unsupported(f"unicorn's internal x86 layout is not the one this VMM knows "
                          f"(calibration failed: {exc!r}); the unicorn engine needs unicorn 2.1.4") from exc


def _calibrate(Uc, arch, mode, hook_intr, x) -> Layout:
    marker_rax, marker_rip = 0x1122_3344_5566_7788, 0x0000_7766_5544_3320
    u = Uc(arch, mode)
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
    efer_before = u.msr_read(MSR_EFER)
    blob_before = bytes(u.context_save())
    u.msr_write(MSR_EFER, 0x901)                    # SCE | LME | NXE; LMA stays from reset
    efer_after = u.msr_read(MSR_EFER)
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
    error_code, old_exception = _find_exception_fields(Uc, arch, mode, hook_intr, x, header)
    is_int = error_code + 4                         # the next int in CPUX86State
    assert _exception_is_int_at(Uc, arch, mode, hook_intr, header, is_int), "exception_is_int"
    return Layout(header=header, size=ctx.size, efer=efer, error_code=error_code, exception_is_int=is_int,
                  old_exception=old_exception, stop_request=_find_stop_request(Uc, arch, mode),
                  hook_callback=_find_hook_callback(Uc, arch, mode))


def _intr_snapshot(Uc, arch, mode, hook_intr, code: bytes, gdt=None):
    """Run `code` at 0x1000 and return (vector, blob before, blob inside the INTR hook)."""
    u = Uc(arch, mode)
    u.mem_map(0, 0x10000)
    u.mem_write(0x1000, code)
    if gdt:
        from unicorn import x86_const as x
        u.reg_write(x.UC_X86_REG_GDTR, (0, 0x7000, gdt, 0))
    before = bytes(u.context_save())
    seen = {}

    def on_intr(uc, vector, _):
        seen["vector"], seen["blob"] = vector, bytes(uc.context_save())
        uc.emu_stop()
    u.hook_add(hook_intr, on_intr)
    u.emu_start(0x1000, 0x1000 + len(code))
    return seen["vector"], before, seen["blob"]


def _find_exception_fields(Uc, arch, mode, hook_intr, x, header):
    """#GP(selector) from loading DS with a selector beyond the GDT limit: the error code is
    the selector; old_exception goes from -1 to 13. Two selectors make the match unique."""
    found = []
    for selector in (0x1238, 0x2240):
        code = bytes([0x66, 0xB8]) + selector.to_bytes(2, "little") + bytes([0x8E, 0xD8])  # mov ax,sel; mov ds,ax
        vector, before, after = _intr_snapshot(Uc, arch, mode, hook_intr, code, gdt=0x17)
        assert vector == GP, f"expected #GP, got {vector}"
        offsets = range(header + 424, len(after) - 4, 4)
        i32 = lambda b, o: struct.unpack_from("<i", b, o)[0]
        found.append(({o - header for o in offsets if i32(before, o) == 0 and i32(after, o) == selector},
                      {o - header for o in offsets if i32(before, o) == -1 and i32(after, o) == GP}))
    (error_code,) = found[0][0] & found[1][0]
    (old_exception,) = found[0][1] & found[1][1]
    return error_code, old_exception


def _exception_is_int_at(Uc, arch, mode, hook_intr, header, offset) -> bool:
    vector, _, after = _intr_snapshot(Uc, arch, mode, hook_intr, bytes([0xCD, 0x30]))   # int 0x30
    return vector == 0x30 and struct.unpack_from("<i", after, header + offset)[0] == 1


def _find_stop_request(Uc, arch, mode) -> int:
    """uc_struct holds `size_t emu_counter, emu_count; int size_recur_mem; bool init_tcg,
    stop_request`. Find emu_counter by running an endless loop with count=K (it ends at K+1,
    next to emu_count = K), then check that the byte 21 bytes on is 1 after a run stopped by
    uc_emu_stop and 0 after a run that ended by HLT."""
    u = Uc(arch, mode)
    u.mem_map(0, 0x10000)
    u.mem_write(0x1000, bytes([0x48, 0xFF, 0xC0, 0xEB, 0xFB]))     # 1: inc rax; jmp 1b
    u.mem_write(0x2000, bytes([0xF4]))                              # hlt
    candidates = None
    for budget in (1234, 56789, 777):
        u.emu_start(0x1000, 1 << 63, count=budget)
        raw = ctypes.string_at(u._uch.value, 4096)      # uc_struct is far larger than 4 KiB
        hits = {o for o in range(0, 4096 - 16, 8) if struct.unpack_from("<QQ", raw, o) == (budget + 1, budget)}
        candidates = hits if candidates is None else candidates & hits
    (emu_counter,) = candidates
    offset = emu_counter + 21
    flag = ctypes.c_bool.from_address(u._uch.value + offset)
    u.emu_start(0x2000, 0)
    assert not flag.value, "stop_request after HLT"
    u.hook_add(_const("UC_HOOK_CODE"), lambda uc, *args: uc.emu_stop())
    u.emu_start(0x1000, 0)
    assert flag.value, "stop_request after uc_emu_stop"
    return offset


def _find_hook_callback(Uc, arch, mode) -> int:
    """struct hook { int type, insn, refs, op, op_flags; bool to_delete; uint64_t begin, end;
    void *callback, *user_data; ... }: find callback next to a user_data marker."""
    u = Uc(arch, mode)
    marker = 0x5AFE_C0DE_0000_0001
    callback = _c_function("uc_errno")
    handle = raw_hook(u, _const("UC_HOOK_BLOCK"), ctypes.c_void_p(callback), 1, 0, user_data=marker)
    raw = ctypes.string_at(handle, 56)
    (offset,) = [o for o in range(0, 56 - 8, 8) if struct.unpack_from("<QQ", raw, o) == (callback, marker)]
    return offset


def _const(name):
    import unicorn
    return getattr(unicorn, name)


def _c_function(name) -> int:
    """The address of an exported libunicorn function."""
    return ctypes.cast(getattr(binding().uclib, name), ctypes.c_void_p).value


class HiddenState:
    """One engine's CPU-state blob: save() it, read or edit fields, restore() it."""

    def __init__(self, uc, lay: Layout):
        self._uc = uc
        self.lay = lay
        self._ctx = uc.context_save()                  # allocated once, reused
        self.buf = (ctypes.c_char * lay.size).from_address(self._ctx.context.value + lay.header)

    def save(self):
        self._uc.context_update(self._ctx)             # (the binding's name for uc_context_save)

    def restore(self):
        self._uc.context_restore(self._ctx)

    def u32(self, off):
        return struct.unpack_from("<I", self.buf, off)[0]

    def set_u32(self, off, value):
        struct.pack_into("<I", self.buf, off, value & 0xFFFF_FFFF)

    def u64(self, off):
        return struct.unpack_from("<Q", self.buf, off)[0]

    def set_u64(self, off, value):
        struct.pack_into("<Q", self.buf, off, value & 0xFFFF_FFFF_FFFF_FFFF)

    # named fields
    def reg(self, index):
        return self.u64(self.lay.regs + 8 * index)

    def set_reg(self, index, value):
        self.set_u64(self.lay.regs + 8 * index, value)

    @property
    def eip(self):
        return self.u64(self.lay.eip)

    @eip.setter
    def eip(self, value):
        self.set_u64(self.lay.eip, value)

    @property
    def hflags(self):
        return self.u32(self.lay.hflags)

    @hflags.setter
    def hflags(self, value):
        self.set_u32(self.lay.hflags, value)

    def seg(self, index):
        """(selector, base, limit, flags) of segs[index]."""
        return SEGMENT_CACHE.unpack_from(self.buf, self.lay.segs + 24 * index)

    def set_seg(self, index, selector, base, limit, flags):
        SEGMENT_CACHE.pack_into(self.buf, self.lay.segs + 24 * index, selector & 0xFFFF,
                                base & 0xFFFF_FFFF_FFFF_FFFF, limit & 0xFFFF_FFFF, flags)

    def table(self, off):
        return SEGMENT_CACHE.unpack_from(self.buf, off)

    def set_table(self, off, selector, base, limit, flags):
        SEGMENT_CACHE.pack_into(self.buf, off, selector & 0xFFFF, base & 0xFFFF_FFFF_FFFF_FFFF,
                                limit & 0xFFFF_FFFF, flags)

    def cr(self, n):
        return self.u64(self.lay.cr + 8 * n)

    def set_cr(self, n, value):
        self.set_u64(self.lay.cr + 8 * n, value)

    @property
    def efer(self):
        return self.u64(self.lay.efer)

    @property
    def error_code(self):
        return self.u32(self.lay.error_code)

    @property
    def exception_is_int(self):
        return struct.unpack_from("<i", self.buf, self.lay.exception_is_int)[0] != 0

    def finish_exception(self):
        """What QEMU's do_interrupt does and unicorn skips: no exception is in flight."""
        struct.pack_into("<i", self.buf, self.lay.old_exception, -1)

    def recompute_segment_hflags(self, rflags=0):
        """CPL, CS32, SS32, CS64 and ADDSEG from the segment caches, as QEMU's
        cpu_x86_load_seg_cache derives them (CPL is SS.DPL, as on a VMX entry)."""
        hflags = self.hflags & ~(HF_CPL_MASK | HF_CS32 | HF_SS32 | HF_CS64 | HF_ADDSEG)
        cs_flags, ss_flags = self.seg(R_CS)[3], self.seg(R_SS)[3]
        protected = self.cr(0) & CR0_PE
        if rflags & VM:
            hflags |= 3
        elif protected:
            hflags |= (ss_flags >> DESC_DPL_SHIFT) & 3
        if hflags & HF_LMA and cs_flags & DESC_L:
            hflags |= HF_CS32 | HF_CS64
        elif cs_flags & DESC_B:
            hflags |= HF_CS32
        if ss_flags & DESC_B:
            hflags |= HF_SS32
        if not hflags & HF_CS64:
            if not protected or rflags & VM or not hflags & HF_CS32:
                hflags |= HF_ADDSEG
            elif self.seg(R_DS)[1] | self.seg(R_ES)[1] | self.seg(R_SS)[1]:
                hflags |= HF_ADDSEG
        self.hflags = hflags


def segment_flags(seg: Segment) -> int:
    """CpuState Segment -> QEMU SegmentCache.flags."""
    if seg.unusable:
        return seg.dpl << DESC_DPL_SHIFT
    return ((seg.type << DESC_TYPE_SHIFT) | (seg.s << 12) | (seg.dpl << DESC_DPL_SHIFT)
            | (seg.present << 15) | (seg.avl << 20) | (seg.l << 21) | (seg.db << 22) | (seg.g << 23))


def segment_from_cache(selector, base, limit, flags) -> Segment:
    present = (flags >> 15) & 1
    return Segment(selector=selector, base=base, limit=limit, type=(flags >> 8) & 0xF,
                   present=present, dpl=(flags >> DESC_DPL_SHIFT) & 3, db=(flags >> 22) & 1,
                   s=(flags >> 12) & 1, l=(flags >> 21) & 1, g=(flags >> 23) & 1,
                   avl=(flags >> 20) & 1, unusable=int(not present))


def descriptor_base(lo: int, hi: int) -> int:
    return (lo >> 16) | ((hi & 0xFF) << 16) | (hi & 0xFF00_0000)


def descriptor_limit(lo: int, hi: int) -> int:
    limit = (lo & 0xFFFF) | (hi & 0xF_0000)
    return (limit << 12) | 0xFFF if hi & DESC_G else limit


# --- 5. Exact stops ----------------------------------------------------------------------------
class StopSwitch:
    """Stops the CPU before the next translated block starts (module docstring, item 5)."""

    def __init__(self, uc, lay: Layout):
        from unicorn import UC_HOOK_BLOCK
        self._idle, self._stop = _c_function("uc_errno"), _c_function("uc_emu_stop")
        handles = [raw_hook(uc, UC_HOOK_BLOCK, ctypes.c_void_p(self._idle)) for _ in range(2)]
        self._callback = ctypes.c_void_p.from_address(handles[0] + lay.hook_callback)
        if self._callback.value != self._idle:
            raise Unsupported("unicorn's struct hook layout changed")
        self._stop_request = ctypes.c_bool.from_address(uc._uch.value + lay.stop_request)

    def arm(self):
        """Safe from any thread and any callback: one aligned pointer store."""
        self._callback.value = self._stop

    def disarm(self):
        self._callback.value = self._idle

    def watch(self, address):
        """Call `address` at each block start instead, until the next arm() or disarm(): a
        UC_HOOK_BLOCK callback (C function or ctypes callback) that decides when to stop,
        by calling uc_emu_stop (stop before this block) or arm() (before the next one)."""
        self._callback.value = address

    @property
    def armed(self) -> bool:
        return self._callback.value == self._stop

    def stopped_run(self) -> bool:
        """After emu_start: True if the run ended by uc_emu_stop (this switch), False if it
        ended by itself (HLT)."""
        return self._stop_request.value


# --- 7. Callbacks without the binding's wrappers ----------------------------------------------
class FastRegisters:
    """uc_reg_read/uc_reg_write of one 64-bit register with a preallocated buffer, without
    the binding's layers (about 1 us instead of 4): for the run loop and interrupt delivery."""
    __slots__ = ("_read", "_write", "_uch", "_value", "_ref")

    def __init__(self, uc):
        lib = binding().uclib
        self._read, self._write = lib.uc_reg_read, lib.uc_reg_write
        self._uch = uc._uch
        self._value = ctypes.c_uint64()
        self._ref = ctypes.byref(self._value)

    def read(self, reg: int) -> int:
        self._read(self._uch, reg, self._ref)
        return self._value.value

    def write(self, reg: int, value: int) -> None:
        self._value.value = value & 0xFFFF_FFFF_FFFF_FFFF
        self._write(self._uch, reg, self._ref)


def raw_hook(uc, htype, cfunc, begin=1, end=0, *extra, user_data=None):
    """uc_hook_add with a ctypes callback (or a C function's address) that the caller keeps
    alive; returns the hook handle, which is the address of unicorn's struct hook."""
    from unicorn import UcError, UC_ERR_OK
    handle = ctypes.c_size_t()
    status = binding().uclib.uc_hook_add(uc._uch, ctypes.byref(handle), htype, cfunc, ctypes.c_void_p(user_data),
                               ctypes.c_uint64(begin), ctypes.c_uint64(end), *extra)
    if status != UC_ERR_OK:
        raise UcError(status)
    return handle.value


def no_exit_address(uc):
    """Make emu_start ignore `until` (item 8 of the module docstring)."""
    uc.ctl_exits_enabled(True)


def raw_mmio_map(uc, address, size, read_cfunc, write_cfunc):
    from unicorn import UcError, UC_ERR_OK
    status = binding().uclib.uc_mmio_map(uc._uch, address, size, read_cfunc, None, write_cfunc, None)
    if status != UC_ERR_OK:
        raise UcError(status)


# --- 3./4. Delivery ------------------------------------------------------------------------------
class DeliveryFault(Exception):
    """An exception raised while delivering another one (or while emulating syscall)."""

    def __init__(self, vector, error_code=0, address=None):
        super().__init__(vector, error_code)
        self.vector = vector
        self.error_code = error_code
        self.address = address          # the linear address, for #PF (goes to CR2)


class MachineCheck(Exception):
    """Delivery needs something we do not emulate, or memory that is not RAM: the CPU stops."""


class X86System:
    """The x86 system behaviour unicorn lacks, for one engine (see the module docstring)."""

    def __init__(self, uc, memory, lay: Layout = None):
        from unicorn import x86_const
        self.x = x86_const
        self.uc = uc
        self.memory = memory
        self.lay = lay or layout()
        self.hs = HiddenState(uc, self.lay)
        self.switch = StopSwitch(uc, self.lay)
        self.regs = FastRegisters(uc)
        self._written = []
        self._tlb = {}                  # translations made during one delivery (paging is fixed)
        # Read-only regions (firmware ROM) where descriptor tables may live, as byte views.
        self._roms = [(gpa, gpa + size, memoryview((ctypes.c_char * size).from_address(host)))
                      for gpa, size, host, read_only in memory.regions() if read_only] \
            if hasattr(memory, "regions") else []
        self.flush_needed = False       # a delivery wrote where invalidate_code could not reach

    # --- 2. CpuState in and out ---------------------------------------------------------------
    def load_state(self, state: CpuState) -> None:
        uc, x, hs = self.uc, self.x, self.hs
        # Control registers through QEMU's own update paths (hidden PE/LMA/FPU flags, TLB).
        uc.reg_write(x.UC_X86_REG_CR0, state.cr0 & ~CR0_PG)      # leaves long mode if paging was on
        hs.save()
        hs.set_u64(hs.lay.efer, state.efer)                      # EFER.LMA cannot be written by wrmsr
        hs.hflags = (hs.hflags & ~HF_LMA) | (HF_LMA if state.efer & EFER_LMA else 0)
        hs.restore()
        uc.reg_write(x.UC_X86_REG_CR4, state.cr4)
        uc.reg_write(x.UC_X86_REG_CR3, state.cr3)
        uc.reg_write(x.UC_X86_REG_CR0, state.cr0)
        # Everything else in the blob, like KVM_SET_SREGS + KVM_SET_REGS.
        hs.save()
        for name, index in SEGMENT_INDEX.items():
            seg = getattr(state, name)
            hs.set_seg(index, seg.selector, seg.base, seg.limit, segment_flags(seg))
        hs.set_table(hs.lay.tr, state.tr.selector, state.tr.base, state.tr.limit, segment_flags(state.tr))
        hs.set_table(hs.lay.ldt, state.ldt.selector, state.ldt.base, state.ldt.limit, segment_flags(state.ldt))
        hs.set_table(hs.lay.gdt, 0, state.gdt_base, state.gdt_limit, 0)
        hs.set_table(hs.lay.idt, 0, state.idt_base, state.idt_limit, 0)
        hs.set_cr(2, state.cr2)
        for name in GENERAL_REGISTERS:
            hs.set_reg(REG_INDEX[name], state.regs.get(name, 0))
        hs.eip = state.rip
        hs.recompute_segment_hflags(state.rflags)
        hs.finish_exception()
        hs.restore()
        uc.reg_write(x.UC_X86_REG_RFLAGS, state.rflags)           # also sets QEMU's lazy flags
        self.flush_tlb()

    def read_state(self) -> CpuState:
        hs = self.hs
        hs.save()
        state = CpuState(regs={name: hs.reg(REG_INDEX[name]) for name in GENERAL_REGISTERS})
        state.rip = hs.eip
        state.rflags = self.uc.reg_read(self.x.UC_X86_REG_RFLAGS)
        for name, index in SEGMENT_INDEX.items():
            setattr(state, name, segment_from_cache(*hs.seg(index)))
        state.tr = segment_from_cache(*hs.table(hs.lay.tr))
        if state.tr.present and state.tr.type in (1, 9):
            state.tr.type |= 2          # QEMU's LTR caches the descriptor before marking it busy
        state.ldt = segment_from_cache(*hs.table(hs.lay.ldt))
        _, state.gdt_base, state.gdt_limit, _ = hs.table(hs.lay.gdt)
        _, state.idt_base, state.idt_limit, _ = hs.table(hs.lay.idt)
        state.cr0, state.cr2, state.cr3, state.cr4 = hs.cr(0), hs.cr(2), hs.cr(3), hs.cr(4)
        state.efer = hs.efer
        return state

    def flush_tlb(self):
        from unicorn.unicorn_const import UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE
        self.uc.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    # --- memory as the CPU sees it (supervisor accesses, our own page walk) -------------------
    def _paging(self):
        hs = self.hs
        return hs.cr(0), hs.cr(3), hs.cr(4), hs.efer

    def translate(self, linear: int, write: bool, paging=None, user=False, fetch=False,
                  set_accessed=True) -> int:
        """Linear -> physical as the CPU's page walk does it (4-level, PAE or 32-bit paging),
        for a supervisor access unless `user`; sets the A/D bits like the CPU; raises
        DeliveryFault(#PF) where the CPU would fault."""
        cr0, cr3, cr4, efer = paging or self._paging()
        if not cr0 & CR0_PG:
            return linear if efer & EFER_LMA else linear & 0xFFFF_FFFF
        key = (linear >> 12, write, user, fetch)
        cached = self._tlb.get(key)
        if cached is not None:
            return cached | (linear & 0xFFF)
        error = (2 if write else 0) | (4 if user else 0) | (16 if fetch else 0)
        if cr4 & CR4_PAE:
            size, index_mask, address_mask = 8, 0x1FF, 0x000F_FFFF_FFFF_F000
            if efer & EFER_LMA:
                table, levels = cr3 & address_mask, ((39, False), (30, True), (21, True), (12, False))
            else:
                pdpte = self._entry((cr3 & 0xFFFF_FFE0) + 8 * ((linear >> 30) & 3), 8)
                if not pdpte & 1:
                    raise DeliveryFault(PF, error, linear)
                table, levels = pdpte & address_mask, ((21, True), (12, False))
        else:
            linear &= 0xFFFF_FFFF
            size, index_mask, address_mask = 4, 0x3FF, 0xFFFF_F000
            table, levels = cr3 & address_mask, ((22, bool(cr4 & CR4_PSE)), (12, False))
        walked = []
        writable = user_page = True
        for shift, may_be_large in levels:
            where = table + size * ((linear >> shift) & index_mask)
            entry = self._entry(where, size)
            if not entry & 1:
                raise DeliveryFault(PF, error, linear)
            walked.append((where, entry))
            writable = writable and bool(entry & 2)
            user_page = user_page and bool(entry & 4)
            if fetch and efer & EFER_NXE and entry >> 63:
                raise DeliveryFault(PF, error | 1, linear)
            if shift == 12 or (may_be_large and entry & 0x80):
                break
            table = entry & address_mask
        page_mask = (1 << shift) - 1
        frame = (entry & 0xFFC0_0000) if size == 4 and shift == 22 else entry & address_mask & ~page_mask
        if (write and not writable and (user or cr0 & CR0_WP)) or (user and not user_page) \
                or (fetch and not user and user_page and cr4 & CR4_SMEP):
            raise DeliveryFault(PF, error | 1, linear)
        if set_accessed:
            last = len(walked) - 1
            for i, (where, old) in enumerate(walked):
                new = old | 0x20 | (0x40 if write and i == last else 0)
                if new != old:
                    self.memory.view(where, size)[:] = new.to_bytes(size, "little")
        physical = frame | (linear & page_mask)
        self._tlb[key] = physical & ~0xFFF
        return physical

    def _entry(self, where, size):
        try:
            return int.from_bytes(self.memory.view(where, size), "little")
        except GuestMemoryError:
            raise MachineCheck(f"page table entry at {where:#x} is outside RAM") from None

    def read_linear(self, linear: int, size: int) -> int:
        """A supervisor read of 1..8 bytes at a linear address, with the current paging
        (for callers outside a delivery: the blob must have been saved)."""
        self._tlb.clear()
        return self._read_linear(linear, size, None)

    def _read_linear(self, linear: int, size: int, paging=None) -> int:
        """A supervisor read of 1..8 bytes that may cross a page boundary."""
        data = b""
        while size:
            chunk = min(size, 0x1000 - (linear & 0xFFF))
            physical = self.translate(linear, False, paging)
            data += self._read_physical(physical, chunk, linear)
            linear, size = linear + chunk, size - chunk
        return int.from_bytes(data, "little")

    def _read_physical(self, physical, size, linear):
        if self.memory.contains(physical, size):
            return bytes(self.memory.view(physical, size))
        for start, end, view in self._roms:
            if start <= physical and physical + size <= end:
                return bytes(view[physical - start:physical - start + size])
        raise MachineCheck(f"read of {physical:#x} (linear {linear:#x}) is outside RAM and ROM")

    def _prepare_push(self, top: int, values, width: int, paging, mask=(1 << 64) - 1, base=0):
        """Translate the slots of a stack frame below `top` (pushed first = values[0]) and
        return [(physical, bytes)] to write once nothing can fault any more."""
        size = width * len(values)
        low = (top - size) & mask
        if low + size == top and (base + low) >> 12 == (base + top - 1) >> 12:
            # The usual case: the whole frame in one page, one translation (of the first
            # slot, so that a #PF reports the same CR2 as the slot-by-slot path below).
            physical = self.translate(base + ((top - width) & mask), True, paging) - (size - width)
            if not self.memory.contains(physical, size):
                raise MachineCheck(f"stack write to {physical:#x} is outside RAM")
            value_mask = (1 << (8 * width)) - 1
            data = b"".join((value & value_mask).to_bytes(width, "little") for value in reversed(values))
            return [(physical, data)], low
        writes = []
        offset = top
        for value in values:
            offset = (offset - width) & mask
            linear = base + offset
            data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
            first = min(width, 0x1000 - (linear & 0xFFF))
            for part_linear, part in ((linear, data[:first]), (linear + first, data[first:])):
                if part:
                    physical = self.translate(part_linear, True, paging)
                    if not self.memory.contains(physical, len(part)):
                        raise MachineCheck(f"stack write to {physical:#x} is outside RAM")
                    writes.append((physical, part))
        return writes, offset

    def _commit(self, writes):
        """Write a frame the way the CPU would; the code-cache check comes after the blob is
        restored (invalidate_code saves the blob itself)."""
        for physical, data in writes:
            self.memory.view(physical, len(data))[:] = data
            if self._written and self._written[-1][1] == physical:      # extend a run downwards
                self._written[-1] = (self._written[-1][0], physical)
            elif self._written and self._written[-1][0] == physical + len(data):
                self._written[-1] = (physical, self._written[-1][1])
            else:
                self._written.append((physical, physical + len(data)))

    def _descriptor(self, selector: int, paging, error_vector=GP):
        """The 8-byte GDT/LDT descriptor for `selector` as (lo, hi)."""
        hs = self.hs
        _, base, limit, _ = hs.table(hs.lay.ldt if selector & 4 else hs.lay.gdt)
        index = selector & ~7
        if index + 7 > limit:
            raise DeliveryFault(error_vector, selector & 0xFFFC)
        raw = self._read_linear(base + index, 8, paging)
        return raw & 0xFFFF_FFFF, raw >> 32

    # --- 3. exceptions ------------------------------------------------------------------------
    def deliver_exception(self, vector: int, eip_bias: int = 0) -> str | None:
        """Called from UC_HOOK_INTR (and for #UD): deliver `vector` through the guest IDT with
        the error code unicorn computed. None on success, else why the CPU shut down."""
        hs = self.hs
        hs.save()
        source = SOFTWARE if hs.exception_is_int else EXCEPTION
        error = hs.error_code if source == EXCEPTION and vector in ERROR_CODE_VECTORS else None
        return self._deliver_nested(vector, error, source, eip_bias)

    def deliver_interrupt(self, vector: int, saved: bool = False) -> str | None:
        """An external interrupt (for interrupt controllers): call between runs, with IF=1.
        `saved`: the blob was saved since the CPU last ran (skip saving it again)."""
        if not saved:
            self.hs.save()
        return self._deliver_nested(vector, None, EXTERNAL, 0)

    def _deliver_nested(self, vector, error, source, eip_bias) -> str | None:
        """Deliver, and if that faults, apply the double-fault rules (SDM 3A table 6-5)."""
        hs = self.hs
        rflags = self.regs.read(self.x.UC_X86_REG_RFLAGS)
        rip = hs.eip
        while True:
            try:
                self._deliver(vector, error, source, rip, rflags, eip_bias)
                return None
            except MachineCheck as stop:
                return f"{stop} while delivering {vector_name(vector)}"
            except DeliveryFault as fault:
                if fault.vector == PF:
                    hs.set_cr(2, fault.address)
                if source == EXCEPTION and vector == DF:
                    return (f"triple fault: {vector_name(fault.vector)} (error {fault.error_code:#x}) "
                            f"while delivering #DF")
                if source == SOFTWARE:
                    rip = self._software_interrupt_start(rip, vector)   # faults point at the INT
                first_class = vector in CONTRIBUTORY or vector == PF if source == EXCEPTION else False
                if first_class and (fault.vector in CONTRIBUTORY or (vector == PF and fault.vector == PF)):
                    vector, error = DF, 0
                else:
                    vector, error = fault.vector, fault.error_code
                source = EXCEPTION

    def _software_interrupt_start(self, rip, vector):
        """RIP of an INT n / INT3 / INTO whose next-instruction RIP is `rip`."""
        try:
            cs_base = self.hs.seg(R_CS)[1]
            if vector in (BP, OF) and self._read_linear(cs_base + rip - 1, 1) in (0xCC, 0xCE):
                return rip - 1
        except (DeliveryFault, MachineCheck):
            pass
        return rip - 2

    def _deliver(self, vector, error, source, rip, rflags, eip_bias):
        """One delivery attempt: every check and page walk happens before anything changes,
        so a DeliveryFault leaves the CPU as it was."""
        hs = self.hs
        self._tlb.clear()
        self._written = []
        paging = self._paging()
        cr0, _, _, efer = paging
        dpl_check = source == SOFTWARE
        if not cr0 & CR0_PE:
            new_rflags = self._deliver_real(vector, rip, rflags, eip_bias)
        elif efer & EFER_LMA:
            new_rflags = self._deliver_long(vector, error, dpl_check, rip, rflags, paging, eip_bias)
        elif rflags & VM:
            raise MachineCheck("virtual-8086 mode interrupts are not emulated")
        else:
            new_rflags = self._deliver_protected(vector, error, dpl_check, rip, rflags, paging, eip_bias)
        hs.finish_exception()
        hs.restore()
        self.regs.write(self.x.UC_X86_REG_RFLAGS, new_rflags)
        written, self._written = self._written, []
        if source == EXTERNAL:
            # An external interrupt's frame lands in free stack, below RSP or at the top of
            # an empty RSP0/IST stack: only code run from bytes last written as an interrupt
            # frame could see stale translations there, and a guest store to those bytes
            # drops them anyway. (The same holds for exception frames; invalidating costs a
            # quarter of a delivery, which matters at timer rates, not at fault rates.)
            return
        for start, end in written:              # called outside translated code: safe here
            if not self.invalidate_code(start, end - start):
                self.flush_needed = True

    def _gate(self, vector, dpl_check, size, paging):
        """Read and check the IDT gate: (lo, hi, next dword)."""
        hs = self.hs
        _, idt_base, idt_limit, _ = hs.table(hs.lay.idt)
        if vector * size + size - 1 > idt_limit:
            raise DeliveryFault(GP, vector * 8 + 2)
        raw = self._read_linear(idt_base + vector * size, 8, paging)
        lo, hi = raw & 0xFFFF_FFFF, raw >> 32
        upper = self._read_linear(idt_base + vector * size + 8, 4, paging) if size == 16 else 0
        gate_type = (hi >> 8) & 0x1F              # includes S, which must be 0
        dpl = (hi >> DESC_DPL_SHIFT) & 3
        cpl = hs.hflags & HF_CPL_MASK
        if dpl_check and dpl < cpl:
            raise DeliveryFault(GP, vector * 8 + 2)
        if gate_type == 0x5:
            raise MachineCheck("task gates are not emulated")
        return lo, hi, upper, gate_type

    def _code_segment(self, selector, paging, long_mode):
        """Check the handler's code segment; returns (lo, hi, target dpl)."""
        if not selector & ~3:
            raise DeliveryFault(GP, 0)
        lo, hi = self._descriptor(selector, paging)
        cpl = self.hs.hflags & HF_CPL_MASK
        if not hi & DESC_S or not hi & (1 << 11):                  # not a code segment
            raise DeliveryFault(GP, selector & 0xFFFC)
        dpl = (hi >> DESC_DPL_SHIFT) & 3
        if dpl > cpl:
            raise DeliveryFault(GP, selector & 0xFFFC)
        if not hi & DESC_P:
            raise DeliveryFault(NP, selector & 0xFFFC)
        if long_mode and (not hi & DESC_L or hi & DESC_B):
            raise DeliveryFault(GP, selector & 0xFFFC)
        if hi & (1 << 10):                                          # conforming: stay at CPL
            dpl = cpl
        return lo, hi, dpl

    def _deliver_long(self, vector, error, dpl_check, rip, rflags, paging, eip_bias):
        """SDM 3A 6.14: 64-bit IDT gates; always push SS:RSP; 16-byte aligned stack."""
        hs = self.hs
        lo, hi, upper, gate_type = self._gate(vector, dpl_check, 16, paging)
        if gate_type not in (0xE, 0xF):
            raise DeliveryFault(GP, vector * 8 + 2)
        if not hi & DESC_P:
            raise DeliveryFault(NP, vector * 8 + 2)
        selector = lo >> 16
        handler = (lo & 0xFFFF) | (hi & 0xFFFF_0000) | (upper << 32)
        ist = hi & 7
        cs_lo, cs_hi, dpl = self._code_segment(selector, paging, long_mode=True)
        cpl = hs.hflags & HF_CPL_MASK
        old_ss, old_rsp = hs.seg(R_SS)[0], hs.reg(RSP_INDEX)
        new_stack = ist != 0 or dpl < cpl
        rsp = self._tss64_stack(ist + 3 if ist else dpl, paging) if new_stack else old_rsp
        rsp &= ~0xF
        frame = [old_ss, old_rsp, rflags, hs.seg(R_CS)[0], rip] + ([error] if error is not None else [])
        writes, rsp = self._prepare_push(rsp, frame, 8, paging)
        self._commit(writes)
        if new_stack:
            hs.set_seg(R_SS, dpl, 0, 0, dpl << DESC_DPL_SHIFT)
        hs.set_seg(R_CS, (selector & ~3) | dpl, descriptor_base(cs_lo, cs_hi),
                   descriptor_limit(cs_lo, cs_hi), cs_hi & DESC_ATTRIBUTES)
        hs.set_reg(RSP_INDEX, rsp)
        hs.eip = handler + eip_bias
        hs.recompute_segment_hflags(rflags)
        hs.hflags = (hs.hflags & ~HF_CPL_MASK) | dpl
        return rflags & ~(TF | VM | RF | NT | (IF if gate_type == 0xE else 0))

    def _tss64_stack(self, level, paging):
        """RSPn (level 0-2) or ISTn (level 3 + n, n = 1..7) from the 64-bit TSS."""
        hs = self.hs
        selector, base, limit, flags = hs.table(hs.lay.tr)
        offset = 8 * level + 4
        if not flags & DESC_P or offset + 7 > limit:
            raise DeliveryFault(TS, selector & 0xFFFC)
        return self._read_linear(base + offset, 8, paging)

    def _deliver_protected(self, vector, error, dpl_check, rip, rflags, paging, eip_bias):
        """SDM 3A 6.12: 32-bit interrupt and trap gates, with the ring change through the
        32-bit TSS's SS0:ESP0 (16-bit gates and task gates are not emulated)."""
        hs = self.hs
        lo, hi, _, gate_type = self._gate(vector, dpl_check, 8, paging)
        if gate_type in (0x6, 0x7):
            raise MachineCheck("16-bit interrupt gates are not emulated")
        if gate_type not in (0xE, 0xF):
            raise DeliveryFault(GP, vector * 8 + 2)
        if not hi & DESC_P:
            raise DeliveryFault(NP, vector * 8 + 2)
        selector = lo >> 16
        handler = (lo & 0xFFFF) | (hi & 0xFFFF_0000)
        cs_lo, cs_hi, dpl = self._code_segment(selector, paging, long_mode=False)
        cpl = hs.hflags & HF_CPL_MASK
        old_ss, ss_base, ss_limit, ss_flags = hs.seg(R_SS)
        old_esp = hs.reg(RSP_INDEX) & 0xFFFF_FFFF
        frame = [rflags, hs.seg(R_CS)[0], rip] + ([error] if error is not None else [])
        if dpl < cpl:
            new_ss, esp, ss_lo, ss_hi = self._tss32_stack(dpl, paging)
            frame = [old_ss, old_esp] + frame
            ss_base, ss_flags = descriptor_base(ss_lo, ss_hi), ss_hi & DESC_ATTRIBUTES
            ss_limit = descriptor_limit(ss_lo, ss_hi)
        else:
            new_ss, esp = None, old_esp
        mask = 0xFFFF_FFFF if ss_flags & DESC_B else 0xFFFF
        writes, offset = self._prepare_push(esp & mask, frame, 4, paging, mask=mask, base=ss_base)
        self._commit(writes)
        if new_ss is not None:
            hs.set_seg(R_SS, new_ss, ss_base, ss_limit, ss_flags)
        hs.set_seg(R_CS, (selector & ~3) | dpl, descriptor_base(cs_lo, cs_hi),
                   descriptor_limit(cs_lo, cs_hi), cs_hi & DESC_ATTRIBUTES)
        hs.set_reg(RSP_INDEX, offset if new_ss is not None else (hs.reg(RSP_INDEX) & ~mask) | offset)
        hs.eip = handler + eip_bias
        hs.recompute_segment_hflags(rflags)
        return rflags & ~(TF | VM | RF | NT | (IF if gate_type == 0xE else 0))

    def _tss32_stack(self, dpl, paging):
        hs = self.hs
        selector, base, limit, flags = hs.table(hs.lay.tr)
        if (flags >> 8) & 0xF not in (0x9, 0xB):
            raise MachineCheck("16-bit TSS stack switches are not emulated")
        offset = 8 * dpl + 4
        if offset + 5 > limit:
            raise DeliveryFault(TS, selector & 0xFFFC)
        esp = self._read_linear(base + offset, 4, paging)
        new_ss = self._read_linear(base + offset + 4, 2, paging)
        if not new_ss & ~3 or new_ss & 3 != dpl:
            raise DeliveryFault(TS, new_ss & 0xFFFC)
        ss_lo, ss_hi = self._descriptor(new_ss, paging, error_vector=TS)
        writable_data = ss_hi & DESC_S and not ss_hi & (1 << 11) and ss_hi & (1 << 9)
        if not writable_data or (ss_hi >> DESC_DPL_SHIFT) & 3 != dpl:
            raise DeliveryFault(TS, new_ss & 0xFFFC)
        if not ss_hi & DESC_P:
            raise DeliveryFault(SS_FAULT, new_ss & 0xFFFC)
        return new_ss, esp, ss_lo, ss_hi

    def _deliver_real(self, vector, rip, rflags, eip_bias):
        """Real mode: the IVT at IDTR.base, 4 bytes per vector; push FLAGS, CS, IP."""
        hs = self.hs
        _, ivt_base, ivt_limit, _ = hs.table(hs.lay.idt)
        if vector * 4 + 3 > ivt_limit:
            raise MachineCheck(f"vector {vector:#x} is beyond the real-mode IVT limit")
        entry = self._read_linear(ivt_base + vector * 4, 4)
        ss_sel, ss_base, _, _ = hs.seg(R_SS)
        sp = hs.reg(RSP_INDEX)
        frame = [rflags, hs.seg(R_CS)[0], rip]
        writes, new_sp = self._prepare_push(sp & 0xFFFF, frame, 2, None, mask=0xFFFF, base=ss_base)
        self._commit(writes)
        cs_sel, cs_base, cs_limit, cs_flags = hs.seg(R_CS)
        hs.set_seg(R_CS, entry >> 16, (entry >> 16) << 4, cs_limit, cs_flags)
        hs.set_reg(RSP_INDEX, (sp & ~0xFFFF) | new_sp)
        hs.eip = (entry & 0xFFFF) + eip_bias
        return rflags & ~(TF | IF | AC | RF)

    # --- 4. syscall -----------------------------------------------------------------------------
    def syscall(self) -> str | None:
        """Called from the UC_X86_INS_SYSCALL hook with RIP at the instruction; unicorn adds 2
        to RIP after the hook, so every RIP we set is biased by -2."""
        uc, x, hs = self.uc, self.x, self.hs
        hs.save()
        efer = hs.efer
        long_mode = efer & EFER_LMA and hs.seg(R_CS)[3] & DESC_L
        if not efer & 1 or not long_mode:               # EFER.SCE clear, or not 64-bit code (Intel)
            return self._deliver_nested(UD, None, EXCEPTION, -2)
        rflags = uc.reg_read(x.UC_X86_REG_RFLAGS)
        star, lstar, fmask = uc.msr_read(MSR_STAR), uc.msr_read(MSR_LSTAR), uc.msr_read(MSR_FMASK)
        rip = hs.eip
        selector = (star >> 32) & 0xFFFC
        hs.set_reg(REG_INDEX["rcx"], rip + 2)
        hs.set_reg(REG_INDEX["r11"], rflags & ~RF)
        # SDM: CS and SS get fixed flat descriptors, not the GDT's.
        hs.set_seg(R_CS, selector, 0, 0xFFFF_FFFF,
                   DESC_G | DESC_P | DESC_S | (0xB << DESC_TYPE_SHIFT) | DESC_L)
        hs.set_seg(R_SS, selector + 8, 0, 0xFFFF_FFFF,
                   DESC_G | DESC_B | DESC_P | DESC_S | (0x3 << DESC_TYPE_SHIFT))
        hs.hflags = (hs.hflags & ~HF_CPL_MASK) | HF_CS32 | HF_SS32 | HF_CS64
        hs.eip = lstar - 2
        hs.restore()
        uc.reg_write(x.UC_X86_REG_RFLAGS, rflags & ~fmask & ~RF)
        return None

    # --- 6. host writes into guest RAM -----------------------------------------------------------
    def invalidate_code(self, gpa: int, length: int) -> bool:
        """Drop translated code for [gpa, gpa+length). Call it between runs or from an
        exception hook, never from inside translated code (an I/O or MMIO callback). True if
        done precisely; False if the caller must flush all translated code instead."""
        hs = self.hs
        hs.save()
        self._tlb.clear()
        paging = self._paging()
        cr0 = paging[0]
        end = gpa + length
        if cr0 & CR0_PG:
            # ctl_remove_cache translates as a code fetch at the current CPL: only for pages
            # our walk shows fetchable at linear == physical.
            user = hs.hflags & HF_CPL_MASK == 3
            page = gpa & ~0xFFF
            while page < end:
                if not self._identity_fetchable(page, paging, user):
                    return False
                page += 0x1000
        return self._remove_cache(gpa, end)

    def _remove_cache(self, start, end) -> bool:
        """ctl_remove_cache, undoing what a fault inside it would leave behind."""
        hs, lay = self.hs, self.lay
        fields = (lay.cr + 16, lay.error_code, lay.exception_is_int, lay.old_exception)
        before = [hs.u64(lay.cr + 16)] + [hs.u32(off) for off in fields[1:]]
        self.uc.ctl_remove_cache(start, end)
        hs.save()
        after = [hs.u64(lay.cr + 16)] + [hs.u32(off) for off in fields[1:]]
        if after == before:
            return True
        hs.set_u64(lay.cr + 16, before[0])
        for off, value in zip(fields[1:], before[1:]):
            hs.set_u32(off, value)
        hs.restore()
        return False

    def _identity_fetchable(self, page, paging, user) -> bool:
        try:
            if self.translate(page, False, paging, user=user, fetch=True, set_accessed=False) != page:
                return False
        except (DeliveryFault, MachineCheck):
            return False
        return True

