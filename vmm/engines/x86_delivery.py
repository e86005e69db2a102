"""x86 exception and interrupt delivery for the software engine, and the SYSCALL instruction.

unicorn hands every exception and INT n to UC_HOOK_INTR and ignores the guest's IDT; #UD
comes through UC_HOOK_INSN_INVALID; `syscall` only calls its hook and adds 2 to RIP. This
module does what the CPU does instead (Intel SDM vol. 3A chapter 6; the SYSCALL page of
vol. 2B), on the CPU-state blob (unicorn_binding.HiddenState):
  - delivery through the guest's own IDT: gate checks, the TSS RSP0/IST stack switch on a
    ring change, the frame, IF cleared for interrupt gates, CR2 kept for #PF; in real mode
    through the IVT. Every check and page walk (arch/x86/paging.py) happens before anything
    changes, so a fault while delivering leaves the CPU as it was and the double-fault rules
    apply (table 6-5); a fault while delivering #DF is a triple fault, which is reported
    (a text) instead of raised;
  - external interrupts from the interrupt platform (deliver_interrupt), between runs;
  - SYSCALL: STAR/LSTAR/FMASK, RCX/R11, CPL 3 -> 0. sysret and iret are QEMU's own and work.
"""
from ..arch.x86.cpu_state import (CR0_PE, DESC_ATTRIBUTES, DESC_B, DESC_CODE, DESC_CONFORMING, DESC_DPL_SHIFT,
                                  DESC_G, DESC_L, DESC_P, DESC_S, DESC_TYPE_SHIFT, DESC_WRITABLE, EFER_LMA,
                                  EFER_SCE, RFLAGS_AC, RFLAGS_IF, RFLAGS_NT, RFLAGS_RF, RFLAGS_TF, RFLAGS_VM,
                                  descriptor_base, descriptor_limit)
from ..arch.x86.exceptions import BP, CONTRIBUTORY, DF, ERROR_CODE_VECTORS, GP, NP, OF, PF, SS, TS, UD, vector_name
from ..arch.x86.msrs import IA32_FMASK, IA32_LSTAR, IA32_STAR
from ..arch.x86.paging import Paging, access_error, mark_accessed, walk
from ..layout import PAGE_SIZE
from .unicorn_layout import (HF_CPL_MASK, HF_CS32, HF_CS64, HF_SS32, R_CS, R_SS, REG_INDEX, RSP_INDEX)
from .unicorn_state import recompute_segment_hflags

# Where an event comes from: raised by an instruction, INT n/INT3/INTO, or an external IRQ.
EXCEPTION, SOFTWARE, EXTERNAL = "exception", "software", "external"


class DeliveryFault(Exception):
    """An exception raised while delivering another one (or while emulating syscall)."""

    def __init__(self, vector, error_code=0, address=None):
        super().__init__(vector, error_code)
        self.vector = vector
        self.error_code = error_code
        self.address = address          # the linear address, for #PF (goes to CR2)


class CannotDeliver(Exception):
    """Delivery needs something we do not emulate, or memory that is not RAM: the CPU stops."""


class InterruptDelivery:
    """Delivers exceptions and interrupts the way the CPU does, for one engine (module doc)."""

    def __init__(self, uc, memory, hs, regs, code_cache):
        from . import unicorn_lib
        self.x = unicorn_lib
        self.uc = uc
        self.memory = memory
        self.hs = hs                    # the engine's HiddenState
        self.regs = regs                # its FastRegisters
        self.code_cache = code_cache    # frames written by delivery may overwrite translated code
        self._written = []
        self._tlb = {}                  # translations made during one delivery (paging is fixed)

    # --- memory as the CPU sees it (supervisor accesses, the one page walker) ------------------------
    def paging(self) -> Paging:
        hs = self.hs
        return Paging(hs.cr(0), hs.cr(3), hs.cr(4), hs.efer)

    def translate(self, linear: int, write: bool, paging=None, user=False) -> int:
        """Linear -> physical as the CPU's page walk does it, for a supervisor access unless
        `user`; sets the accessed and dirty bits like the CPU; raises DeliveryFault(#PF)
        where the CPU would fault."""
        paging = paging or self.paging()
        key = (linear >> 12, write, user)
        cached = self._tlb.get(key)
        if cached is not None:
            return cached | (linear & 0xFFF)
        result = walk(paging, self.memory, linear)
        if not result.paged:
            return result.physical
        if result.fault == "outside":
            raise CannotDeliver(f"page table entry at {result.where:#x} is outside RAM")
        if result.fault == "unsupported":
            raise CannotDeliver(result.error)
        error = access_error(result, paging, write, user, fetch=False)
        if error is not None:
            raise DeliveryFault(PF, error, linear)
        mark_accessed(result, self.memory, write)
        self._tlb[key] = result.physical & ~0xFFF
        return result.physical

    def read_linear(self, linear: int, size: int) -> int:
        """A supervisor read of 1..8 bytes at a linear address, with the current paging
        (for callers outside a delivery: the blob must have been saved)."""
        self._tlb.clear()
        return self._read_linear(linear, size, None)

    def _read_linear(self, linear: int, size: int, paging=None) -> int:
        """A supervisor read of 1..8 bytes that may cross a page boundary."""
        data = b""
        while size:
            chunk = min(size, PAGE_SIZE - (linear & 0xFFF))
            physical = self.translate(linear, False, paging)
            data += self._read_physical(physical, chunk, linear)
            linear, size = linear + chunk, size - chunk
        return int.from_bytes(data, "little")

    def _read_physical(self, physical, size, linear):
        data = self.memory.read_mapped(physical, size)
        if data is None:
            raise CannotDeliver(f"read of {physical:#x} (linear {linear:#x}) is outside RAM and ROM")
        return data

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
                raise CannotDeliver(f"stack write to {physical:#x} is outside RAM")
            value_mask = (1 << (8 * width)) - 1
            data = b"".join((value & value_mask).to_bytes(width, "little") for value in reversed(values))
            return [(physical, data)], low
        writes = []
        offset = top
        for value in values:
            offset = (offset - width) & mask
            linear = base + offset
            data = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")
            first = min(width, PAGE_SIZE - (linear & 0xFFF))
            for part_linear, part in ((linear, data[:first]), (linear + first, data[first:])):
                if part:
                    physical = self.translate(part_linear, True, paging)
                    if not self.memory.contains(physical, len(part)):
                        raise CannotDeliver(f"stack write to {physical:#x} is outside RAM")
                    writes.append((physical, part))
        return writes, offset

    def _commit(self, writes):
        """Write a frame the way the CPU would; the code-cache check comes after the blob is
        restored (the code cache saves the blob itself)."""
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

    # --- exceptions and interrupts ----------------------------------------------------------------
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

    def deliver_pending_exception(self, vector: int, error: int | None) -> str | None:
        """An exception another engine was delivering when a snapshot was taken (KVM's
        vCPU events): deliver it now, between runs."""
        self.hs.save()
        return self._deliver_nested(vector, error, EXCEPTION, 0)

    def _deliver_nested(self, vector, error, source, eip_bias) -> str | None:
        """Deliver, and if that faults, apply the double-fault rules (SDM 3A table 6-5)."""
        hs = self.hs
        rflags = self.regs.read(self.x.UC_X86_REG_RFLAGS)
        rip = hs.eip
        while True:
            try:
                self._deliver(vector, error, source, rip, rflags, eip_bias)
                return None
            except CannotDeliver as stop:
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
        except (DeliveryFault, CannotDeliver):
            pass
        return rip - 2

    def _deliver(self, vector, error, source, rip, rflags, eip_bias):
        """One delivery attempt: every check and page walk happens before anything changes,
        so a DeliveryFault leaves the CPU as it was."""
        hs = self.hs
        self._tlb.clear()
        self._written = []
        paging = self.paging()
        dpl_check = source == SOFTWARE
        if not paging.cr0 & CR0_PE:
            new_rflags = self._deliver_real(vector, rip, rflags, eip_bias)
        elif paging.efer & EFER_LMA:
            new_rflags = self._deliver_long(vector, error, dpl_check, rip, rflags, paging, eip_bias)
        elif rflags & RFLAGS_VM:
            raise CannotDeliver("virtual-8086 mode interrupts are not emulated")
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
            self.code_cache.drop(start, end - start)

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
            raise CannotDeliver("task gates are not emulated")
        return lo, hi, upper, gate_type

    def _code_segment(self, selector, paging, long_mode):
        """Check the handler's code segment; returns (lo, hi, target dpl)."""
        if not selector & ~3:
            raise DeliveryFault(GP, 0)
        lo, hi = self._descriptor(selector, paging)
        cpl = self.hs.hflags & HF_CPL_MASK
        if not hi & DESC_S or not hi & DESC_CODE:                  # not a code segment
            raise DeliveryFault(GP, selector & 0xFFFC)
        dpl = (hi >> DESC_DPL_SHIFT) & 3
        if dpl > cpl:
            raise DeliveryFault(GP, selector & 0xFFFC)
        if not hi & DESC_P:
            raise DeliveryFault(NP, selector & 0xFFFC)
        if long_mode and (not hi & DESC_L or hi & DESC_B):
            raise DeliveryFault(GP, selector & 0xFFFC)
        if hi & DESC_CONFORMING:                                          # conforming: stay at CPL
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
        recompute_segment_hflags(hs, rflags)
        hs.hflags = (hs.hflags & ~HF_CPL_MASK) | dpl
        return rflags & ~(RFLAGS_TF | RFLAGS_VM | RFLAGS_RF | RFLAGS_NT | (RFLAGS_IF if gate_type == 0xE else 0))

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
            raise CannotDeliver("16-bit interrupt gates are not emulated")
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
        recompute_segment_hflags(hs, rflags)
        return rflags & ~(RFLAGS_TF | RFLAGS_VM | RFLAGS_RF | RFLAGS_NT | (RFLAGS_IF if gate_type == 0xE else 0))

    def _tss32_stack(self, dpl, paging):
        hs = self.hs
        selector, base, limit, flags = hs.table(hs.lay.tr)
        if (flags >> 8) & 0xF not in (0x9, 0xB):
            raise CannotDeliver("16-bit TSS stack switches are not emulated")
        offset = 8 * dpl + 4
        if offset + 5 > limit:
            raise DeliveryFault(TS, selector & 0xFFFC)
        esp = self._read_linear(base + offset, 4, paging)
        new_ss = self._read_linear(base + offset + 4, 2, paging)
        if not new_ss & ~3 or new_ss & 3 != dpl:
            raise DeliveryFault(TS, new_ss & 0xFFFC)
        ss_lo, ss_hi = self._descriptor(new_ss, paging, error_vector=TS)
        writable_data = ss_hi & DESC_S and not ss_hi & DESC_CODE and ss_hi & DESC_WRITABLE
        if not writable_data or (ss_hi >> DESC_DPL_SHIFT) & 3 != dpl:
            raise DeliveryFault(TS, new_ss & 0xFFFC)
        if not ss_hi & DESC_P:
            raise DeliveryFault(SS, new_ss & 0xFFFC)
        return new_ss, esp, ss_lo, ss_hi

    def _deliver_real(self, vector, rip, rflags, eip_bias):
        """Real mode: the IVT at IDTR.base, 4 bytes per vector; push FLAGS, CS, IP."""
        hs = self.hs
        _, ivt_base, ivt_limit, _ = hs.table(hs.lay.idt)
        if vector * 4 + 3 > ivt_limit:
            raise CannotDeliver(f"vector {vector:#x} is beyond the real-mode IVT limit")
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
        return rflags & ~(RFLAGS_TF | RFLAGS_IF | RFLAGS_AC | RFLAGS_RF)

    # --- SYSCALL ---------------------------------------------------------------------------------
    def syscall(self) -> str | None:
        """Called from the UC_X86_INS_SYSCALL hook with RIP at the instruction; unicorn adds 2
        to RIP after the hook, so every RIP we set is biased by -2."""
        uc, x, hs = self.uc, self.x, self.hs
        hs.save()
        efer = hs.efer
        long_mode = efer & EFER_LMA and hs.seg(R_CS)[3] & DESC_L
        if not efer & EFER_SCE or not long_mode:               # EFER.SCE clear, or not 64-bit code (Intel)
            return self._deliver_nested(UD, None, EXCEPTION, -2)
        rflags = uc.reg_read(x.UC_X86_REG_RFLAGS)
        star, lstar, fmask = uc.msr_read(IA32_STAR), uc.msr_read(IA32_LSTAR), uc.msr_read(IA32_FMASK)
        rip = hs.eip
        selector = (star >> 32) & 0xFFFC
        hs.set_reg(REG_INDEX["rcx"], rip + 2)
        hs.set_reg(REG_INDEX["r11"], rflags & ~RFLAGS_RF)
        # SDM: CS and SS get fixed flat descriptors, not the GDT's.
        hs.set_seg(R_CS, selector, 0, 0xFFFF_FFFF,
                   DESC_G | DESC_P | DESC_S | (0xB << DESC_TYPE_SHIFT) | DESC_L)
        hs.set_seg(R_SS, selector + 8, 0, 0xFFFF_FFFF,
                   DESC_G | DESC_B | DESC_P | DESC_S | (0x3 << DESC_TYPE_SHIFT))
        hs.hflags = (hs.hflags & ~HF_CPL_MASK) | HF_CS32 | HF_SS32 | HF_CS64
        hs.eip = lstar - 2
        hs.restore()
        uc.reg_write(x.UC_X86_REG_RFLAGS, rflags & ~fmask & ~RFLAGS_RF)
        return None
