"""The KVM engine's debug interface (the contract is EngineDebug in engines/base.py), built on
KVM_SET_GUEST_DEBUG and KVM_EXIT_DEBUG. It is the engine's debug hook while it runs the vCPU
(on_debug_exit, on_kick: KvmEngine calls them on its slow paths only); everything else
reaches it through KvmEngine.debug().

  - Breakpoints, by what this KVM provides (engines/kvm_features.py): where KVM reports int3
    (SW_BREAKPOINTS: VT-x, AMD-V), an int3 at each address for the length of a run
    (engines/kvm_breakpoints.py: memory reads between runs see the guest's own bytes), a guest's
    own int3 handed back to it (KVM_GUESTDBG_INJECT_BP). Elsewhere (kvm_pvm: an int3 in ring 0
    is an emulation failure, one in ring 3 goes to the guest's #BP handler; KVM nested in QEMU
    7.2's TCG) and for addresses that take no int3: the vCPU's debug registers
    (KVM_GUESTDBG_USE_HW_BP), four at most; with more, or where they do not fire either
    (HW_BREAKPOINTS missing: that TCG again), running single-steps and compares RIP (slow, and
    only as sure as KVM's steps: see _scan_run).
  - Stepping: KVM_GUESTDBG_SINGLESTEP, with KVM_GUESTDBG_BLOCKIRQ where KVM has it, so that a
    step goes to the next instruction and not into an interrupt handler (as QEMU's gdbstub).
  - pause(): a kick; the EINTR path asks on_kick, which answers PAUSED.
  - Tracing: single-stepping, one KVM_EXIT_DEBUG per instruction (about 10 k/s here). On
    kvm_pvm only ring-0 code is stepped (ring 3 runs natively, unseen), and the step exit is
    lost after a write that exits to the VMM (OUT, an MMIO store): the instruction that then
    runs unseen is recovered from the code (KvmTraceFeed._unseen), so it is not a gap.
"""
from ..arch.x86 import paging as x86_paging
from ..arch.x86.cpu_state import CR0_PE, EFER_LMA
from ..arch.x86.debug_registers import BREAKPOINT_REGISTERS, DR6_BREAKPOINTS, DR7_FIXED, DR7_G0, DR7_GE
from ..arch.x86.exceptions import BP
from ..kvm import constants as kc
from ..kvm import structs as ks
from ..outcome import DEBUG_STOP, PAUSED, Outcome
from . import kvm_features
from .base import EngineDebug

MAX_HW_BREAKPOINTS = BREAKPOINT_REGISTERS
MAX_UNSEEN = 3                  # instructions the tracer may fill in between two step exits


def guest_debug_control(single_step: bool, breakpoints) -> tuple:
    """(KVM_GUESTDBG_* flags, debugreg[8]) for a run: instruction breakpoints go to DR0-DR3
    (R/W=00, LEN=00, global enable), as QEMU's KVM gdbstub programs them. With more than four
    (or when stepping anyway) they are left out: the caller single-steps instead."""
    control = ks.KVM_GUESTDBG_ENABLE
    debugreg = [0] * 8
    if single_step or len(breakpoints) > MAX_HW_BREAKPOINTS:
        control |= ks.KVM_GUESTDBG_SINGLESTEP
    elif breakpoints:
        control |= ks.KVM_GUESTDBG_USE_HW_BP
        dr7 = DR7_FIXED | DR7_GE
        for i, address in enumerate(sorted(breakpoints)):
            debugreg[i] = address
            dr7 |= DR7_G0 << (2 * i)        # Gi: global enable of DRi
        debugreg[7] = dr7
    else:
        control = 0                         # nothing to catch: full speed, debugging off
    return control, debugreg


class KvmDebug(EngineDebug):
    def __init__(self, engine):
        super().__init__(engine)
        self._scan = frozenset()            # breakpoints matched by single-stepping
        self._halted_at = None              # RIP after a HLT the guest was paused in
        support = max(0, engine._kvm.check_extension(kc.KVM_CAP_SET_GUEST_DEBUG2))
        self._block_irq = bool(support & ks.KVM_GUESTDBG_BLOCKIRQ)
        self._breakpoint_kinds = None       # (soft, debug_registers), found on first use
        self._guest_debug = (0, [0] * 8)   # what the current run was given (for re-injection)

    # --- which breakpoints this KVM has: asked only by a debugger ---------------------------------
    def _kinds(self) -> tuple:
        """Finding out runs a probe VM (kvm_features.missing), which a run that only observes
        its exits (vmm run's ring of recent exits for crash reports) must not pay for."""
        if self._breakpoint_kinds is None:
            from .kvm_breakpoints import SoftBreakpoints
            missing = self.engine.missing_features()
            soft = None if kvm_features.SW_BREAKPOINTS in missing else SoftBreakpoints(self.memory)
            self._breakpoint_kinds = (soft, kvm_features.HW_BREAKPOINTS not in missing)
        return self._breakpoint_kinds

    @property
    def soft(self):
        """The int3 breakpoints (kvm_breakpoints.SoftBreakpoints) where KVM reports int3, else None."""
        return self._kinds()[0]

    @property
    def debug_registers(self) -> bool:
        """Whether debug-register breakpoints stop the guest here."""
        return self._kinds()[1]

    # --- registers and memory ------------------------------------------------------------------
    def read_fpu(self) -> dict:
        fpu = self.engine._vcpu.get_fpu()
        return {"st": [bytes(fpu.fpr[i])[:10] for i in range(8)], "fctrl": fpu.fcw, "fstat": fpu.fsw,
                "ftag": fpu.ftwx, "fop": fpu.last_opcode, "fioff": fpu.last_ip, "fooff": fpu.last_dp,
                "xmm": [bytes(fpu.xmm[i]) for i in range(16)], "mxcsr": fpu.mxcsr}

    def paging(self) -> x86_paging.Paging:
        return self.code_context()[0]

    def code_context(self) -> tuple:
        """(Paging, code bits) from one KVM_GET_SREGS: what a tracer needs to find and
        decode the next instruction, without building a whole CpuState."""
        sregs = self.engine._vcpu.get_sregs()
        cs = sregs.cs
        if sregs.cr0 & CR0_PE:
            bits = 64 if sregs.efer & EFER_LMA and cs.l else 32 if cs.db else 16
        else:
            bits = 16
        return x86_paging.Paging(sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer), bits

    # --- running -------------------------------------------------------------------------------
    def run(self, single_step: bool, breakpoints=()) -> Outcome:
        engine = self.engine
        engine.set_debug_hook(self)
        self._rewind_hlt()
        rest = frozenset(breakpoints)
        if self.soft is not None and rest and not single_step:
            rest = frozenset(self.soft.insert(self.paging(), rest, unpaged=not self.debug_registers))
        scan = bool(rest) and not single_step and (len(rest) > MAX_HW_BREAKPOINTS or not self.debug_registers)
        control, debugreg = guest_debug_control(single_step or scan, () if scan else rest)
        if single_step and self._block_irq:
            control |= ks.KVM_GUESTDBG_BLOCKIRQ     # a step goes to the next instruction, not an ISR
        if self.soft is not None and self.soft.inserted:
            control |= ks.KVM_GUESTDBG_ENABLE | ks.KVM_GUESTDBG_USE_SW_BP
        self._scan = rest if scan else frozenset()
        self._guest_debug = (control, debugreg)
        try:
            engine._vcpu.set_guest_debug(control, debugreg)
            if single_step:
                return self._step()
            if scan:
                return self._scan_run()
            return engine.run(None)
        finally:
            if self.soft is not None:
                self.soft.remove()

    def _scan_run(self) -> Outcome:
        """Run by single-steps, comparing RIP. KVM steps with the guest's TF, which is lost now
        and then (where the guest reloads RFLAGS: iretq, syscall; kvm_pvm after an OUT; kvm_amd
        without NRIPS at the switch to long mode): the guest would then run on unseen, so the
        step is set again after every port or MMIO write."""
        vcpu = self.engine._vcpu
        return self.engine.run(None, after_write=lambda: vcpu.set_guest_debug(*self._guest_debug))

    def _step(self) -> Outcome:
        """One instruction. On this host (kvm_pvm) the step's KVM_EXIT_DEBUG is lost after
        an instruction whose write exits to the VMM (OUT, an MMIO store): the next
        instruction runs too (measured; reads are fine). For the common cases, a plain `out`
        and a `mov` store, the run is ended right after the write instead, the way a device's
        stop request ends it: KVM completes the instruction and runs nothing more. (String
        I/O and other MMIO writers are left alone: a stop there could split one exit's
        elements or fragments.)"""
        engine = self.engine
        if self._mnemonic_at_pc() not in ("out", "mov"):
            return engine.run(None)
        control = engine.control
        stop = Outcome(DEBUG_STOP, detail="step over a write that exited to the VMM")
        try:
            return engine.run(None, after_write=lambda: control.request_stop(stop))   # a device's own stop wins
        finally:
            if control.stop is stop:
                control.stop = None

    def _mnemonic_at_pc(self) -> str:
        from ..debug import disasm          # (the debugger's own imports wait for the debugger)
        state = self.read_state()
        pc = x86_paging.linear_address(state, state.cs, state.rip)
        code, _ = x86_paging.read(x86_paging.Paging.of(state), self.memory, pc, disasm.MAX_INSN)
        size, text = disasm.decode_one(code, pc, state.bits()) if code else (0, "")
        return text.split(" ", 1)[0] if size else ""

    def _rewind_hlt(self):
        """A guest paused while halted (HLT with IF=1) goes back into its HLT when resumed,
        unless the debugger moved RIP meanwhile."""
        if self._halted_at is None:
            return
        state = self.read_state()
        if state.rip == self._halted_at:
            state.rip -= 1                  # HLT is one byte (F4)
            self.write_state(state)
        self._halted_at = None

    def pause(self) -> None:
        super().pause()
        self.engine._kick()

    # --- the engine's debug hook ---------------------------------------------------------------
    def on_debug_exit(self, exception: int, pc: int, dr6: int):
        """KVM_EXIT_DEBUG at linear `pc`: a stop, or None to go on."""
        if exception == BP:
            if self.soft is not None and pc in self.soft.inserted:
                return Outcome(DEBUG_STOP, detail=f"breakpoint at {pc:#x}", rip=pc)
            # The guest's own int3 (KVM_GUESTDBG_USE_SW_BP takes them all): hand it back.
            control, debugreg = self._guest_debug
            self.engine._vcpu.set_guest_debug(control | ks.KVM_GUESTDBG_INJECT_BP, debugreg)
            return None
        if self._scan and pc not in self._scan:
            if self.pause_pending():
                return Outcome(PAUSED, detail=f"paused at {pc:#x}", rip=pc)
            return None                     # single-stepping towards one of many breakpoints
        kind = "breakpoint" if dr6 & DR6_BREAKPOINTS or pc in self._scan else "step"
        return Outcome(DEBUG_STOP, detail=f"{kind} at {pc:#x}", rip=pc)

    def on_kick(self, halted: bool):
        """A kick ended KVM_RUN or the HLT wait (`halted`: after a HLT with IF=1)."""
        if not self.pause_pending():
            return None
        state = self.read_state()
        self._halted_at = state.rip if halted else None
        return Outcome(PAUSED, detail=f"paused at rip={state.rip:#x}", rip=state.rip)

    # --- observing -----------------------------------------------------------------------------
    def trace(self, tracer) -> "KvmTraceFeed":
        return KvmTraceFeed(self, tracer)

    def observe_exits(self, observer) -> None:
        self.engine.exit_observer = observer

    def close(self) -> None:
        self.engine.set_debug_hook(None)


class KvmTraceFeed:
    """The engine's debug hook while tracing: single-step, log each instruction, go on."""

    def __init__(self, debug: KvmDebug, tracer):
        self._debug = debug
        self.engine = debug.engine
        self.memory = debug.memory
        self.tracer = tracer
        self._attached = True
        state = debug.read_state()
        self._log(x86_paging.linear_address(state, state.cs, state.rip))    # the first instruction
        self.engine.set_debug_hook(self)
        self.engine._vcpu.set_guest_debug(ks.KVM_GUESTDBG_ENABLE | ks.KVM_GUESTDBG_SINGLESTEP)

    def _log(self, pc: int) -> bool:
        from ..debug import disasm
        paging, bits = self._debug.code_context()
        tracer = self.tracer
        if tracer.is_gap(pc):
            for address, code in self._unseen(paging, bits, tracer.next_address, pc):
                if not tracer.on_instruction(address, code, bits):
                    return False
        code, _ = x86_paging.read(paging, self.memory, pc, disasm.MAX_INSN)
        return tracer.on_instruction(pc, code, bits)

    def _unseen(self, paging, bits: int, start: int, pc: int) -> list:
        """The instructions that ran without a step exit of their own (see the module
        docstring): [(address, bytes)] from `start` if straight-line code from there (at most
        MAX_UNSEEN instructions, the last one possibly a direct branch) leads to `pc`; else []
        (a real gap: an exception or interrupt entry)."""
        from ..debug import disasm
        from ..debug.trace import direct_target, is_branch
        chain = []
        address = start
        for _ in range(MAX_UNSEEN):
            code, _ = x86_paging.read(paging, self.memory, address, disasm.MAX_INSN)
            size, text = disasm.decode_one(code, address, bits) if code else (0, "")
            if not size:
                return []
            chain.append((address, code[:size]))
            address += size
            mnemonic, _, operand = text.partition(" ")
            if address == pc or (is_branch(mnemonic) and direct_target(operand) == pc):
                return chain
            if mnemonic in ("ret", "retq") and not operand and self._returned_to(paging, bits, pc):
                return chain
            if is_branch(mnemonic):
                return []
        return []

    def _returned_to(self, paging, bits: int, pc: int) -> bool:
        """Did a `ret` just pop `pc`? (The slot below the stack pointer holds it.)"""
        state = self._debug.read_state()
        width = 8 if bits == 64 else 4
        top = x86_paging.linear_address(state, state.ss, state.regs["rsp"] - width)
        data, _ = x86_paging.read(paging, self.memory, top, width)
        return len(data) == width and int.from_bytes(data, "little") == pc

    def on_debug_exit(self, exception: int, pc: int, dr6: int):
        if not self._log(pc):
            self.detach()
        return None

    def on_kick(self, halted: bool):
        return None

    def detach(self) -> None:
        if self._attached:
            self._attached = False
            self.engine.set_debug_hook(None)
