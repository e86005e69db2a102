"""DebugTarget: what a debugger (the gdb stub) needs from a CPU engine, and its two versions.

    target = make_target(engine, memory)        # KvmTarget or UnicornTarget
    target.add_breakpoint(0x103de0)
    stop = target.resume()                      # runs the guest on this thread
    stop.signal == SIGTRAP, target.read_state().rip == 0x103de0

All calls but interrupt() are made on the vCPU thread (the one that would call
engine.run()); interrupt() may come from any thread and makes a running resume()/step()
return soon with a SIGINT stop, the guest's state exact and resumable.

Addresses are linear (gdb's virtual addresses; in 64-bit code, linear = virtual). Memory is
read and written through the guest's page tables (vmm/arch/x86/paging.py); an unmapped
address raises MemoryFault. Breakpoints never modify guest memory:
  - KVM: the vCPU's debug registers (KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_USE_HW_BP), four
    at most; with more, continuing single-steps and compares RIP (slow, but correct). Why
    not int3: on this host (kvm_pvm) an int3 in ring 0 ends in an emulation failure, and one
    in ring 3 goes to the guest's own #BP handler (measured; see the report).
  - unicorn: a UC_HOOK_CODE bounded to each breakpoint address.
Stepping: KVM_GUESTDBG_SINGLESTEP (with KVM_GUESTDBG_BLOCKIRQ where KVM has it, so that a
step does not land in an interrupt handler, as QEMU's gdbstub does), or a UC_HOOK_CODE that
stops after one instruction.
Resuming from an address with a breakpoint first steps over it with breakpoints off.

How a run ends is an Outcome (vmm/outcome.py); the two reasons below are the debug ones,
never seen outside a debug session. Every other Outcome means the VM has ended.
"""
import threading
from dataclasses import dataclass

from ..kvm import structs as ks
from ..outcome import CRASHES, Outcome
from ..arch.x86 import paging as pagewalk
from . import disasm

DEBUG_STOP = "debug-stop"       # a breakpoint was reached or a step completed
PAUSED = "paused"               # interrupt() stopped the guest

# gdb's signal numbers (gdb/signals.def), for stop replies.
SIGINT = 2
SIGTRAP = 5
SIGKILL = 9
SIGSEGV = 11

MAX_HW_BREAKPOINTS = 4          # DR0-DR3
DR7_FIXED = 0x400               # DR7 bit 10 reads as 1
DR7_GE = 1 << 9                 # exact breakpoint detection (recommended with breakpoints)


class MemoryFault(Exception):
    """A guest virtual address that does not translate to RAM."""


@dataclass
class Stop:
    """Why resume()/step() returned. `signal` is set while the guest can still be debugged
    (SIGTRAP: breakpoint or step, SIGINT: interrupted, SIGSEGV: the guest crashed and can be
    inspected but not resumed); `outcome` is set when the VM has ended (or crashed)."""
    signal: int | None
    outcome: Outcome | None = None

    @property
    def ended(self) -> bool:
        return self.outcome is not None


class DebugTarget:
    """The interface (see the module docstring)."""

    def read_state(self):
        """The vCPU's CpuState."""
        raise NotImplementedError

    def write_state(self, state) -> None:
        raise NotImplementedError

    def read_fpu(self) -> dict | None:
        """x87/SSE registers as KvmEngine.get_fpu_state() gives them, or None (shown as 0)."""
        return None

    def read_memory(self, address: int, length: int) -> bytes:
        """The bytes at a virtual address; fewer than `length` if the range runs into an
        unmapped page, MemoryFault if its first byte is unmapped."""
        raise NotImplementedError

    def write_memory(self, address: int, data: bytes) -> None:
        raise NotImplementedError

    def add_breakpoint(self, address: int) -> None:
        raise NotImplementedError

    def remove_breakpoint(self, address: int) -> None:
        raise NotImplementedError

    def clear_breakpoints(self) -> None:
        raise NotImplementedError

    def step(self) -> Stop:
        raise NotImplementedError

    def resume(self) -> Stop:
        raise NotImplementedError

    def interrupt(self) -> None:
        """Any thread: make a running step()/resume() return a SIGINT stop soon."""
        raise NotImplementedError

    def cancel_interrupt(self) -> None:
        """Drop an interrupt() that came too late to stop the last run (vCPU thread)."""

    def stop_requested(self):
        """The Outcome the VMM asked the run to end with (RunControl.stop), or None: the
        stub ends a session with it even while the guest is stopped."""
        return None

    def close(self) -> None:
        """Debugging off; the engine runs as if the target never existed."""


class EngineTarget(DebugTarget):
    """What both engines share: registers through get_state/set_state, memory through the
    page walk, breakpoint bookkeeping, stepping over a breakpoint, turning Outcomes into
    Stops. Subclasses supply _run(single_step, breakpoints) and _pause_engine()."""

    def __init__(self, engine, memory):
        self.engine = engine
        self.memory = memory
        self.breakpoints = set()
        self.ended = None               # the Outcome that ended the VM, once it has
        self._pause = threading.Event()

    # --- registers and memory ----------------------------------------------------------------
    def read_state(self):
        return self.engine.get_state()

    def write_state(self, state) -> None:
        self.engine.set_state(state)

    def read_memory(self, address: int, length: int) -> bytes:
        data, error = pagewalk.read(self._paging(), self.memory, address, length)
        if error and not data:
            raise MemoryFault(error)
        return data

    def write_memory(self, address: int, data: bytes) -> None:
        error = pagewalk.write(self._paging(), self.memory, address, bytes(data))
        if error:
            raise MemoryFault(error)

    def _paging(self):
        return pagewalk.Paging.of(self.engine.get_state())

    def stop_requested(self):
        return self.engine.control.stop

    def pc(self) -> int:
        """The linear address of the next instruction."""
        state = self.engine.get_state()
        return pagewalk.linear_address(state, state.cs, state.rip)

    # --- breakpoints ---------------------------------------------------------------------------
    def add_breakpoint(self, address: int) -> None:
        self.breakpoints.add(address)

    def remove_breakpoint(self, address: int) -> None:
        self.breakpoints.discard(address)

    def clear_breakpoints(self) -> None:
        self.breakpoints.clear()

    # --- running -------------------------------------------------------------------------------
    def step(self) -> Stop:
        if self.ended is not None:
            return Stop(None, self.ended)
        if self._take_pause():
            return Stop(SIGINT)
        return self._stop(self._run(True, ()))

    def resume(self) -> Stop:
        if self.ended is not None:
            return Stop(None, self.ended)
        if self._take_pause():
            return Stop(SIGINT)
        if self.breakpoints and self.pc() in self.breakpoints:
            stop = self._stop(self._run(True, ()))      # step over the breakpoint we sit on
            if stop.signal != SIGTRAP or self.pc() in self.breakpoints:
                return stop
        return self._stop(self._run(False, frozenset(self.breakpoints)))

    def interrupt(self) -> None:
        self._pause.set()
        self._pause_engine()

    def cancel_interrupt(self) -> None:
        self._take_pause()

    def _take_pause(self) -> bool:
        """An interrupt() that came while nothing ran: it stops the next run before it starts."""
        if not self._pause.is_set():
            return False
        self._pause.clear()
        self._forget_pause()
        return True

    def _forget_pause(self) -> None:
        """Drop whatever _pause_engine() left pending in the engine."""

    def _stop(self, outcome: Outcome) -> Stop:
        if outcome.reason == DEBUG_STOP:
            return Stop(SIGTRAP)
        if outcome.reason == PAUSED:
            self._pause.clear()
            return Stop(SIGINT)
        self.ended = outcome
        return Stop(SIGSEGV if outcome.reason in CRASHES else None, outcome)

    def _run(self, single_step: bool, breakpoints) -> Outcome:
        raise NotImplementedError

    def _pause_engine(self) -> None:
        raise NotImplementedError


# --- KVM ------------------------------------------------------------------------------------------
class KvmTarget(EngineTarget):
    """KvmEngine through KVM_SET_GUEST_DEBUG; it is the engine's debug hook (on_debug_exit,
    on_kick) for as long as it lives."""

    def __init__(self, engine, memory):
        super().__init__(engine, memory)
        self._scan = frozenset()        # breakpoints matched by single-stepping (more than 4)
        self._halted_at = None          # RIP after a HLT the guest was paused in
        self._block_irq = bool(engine.guest_debug_support() & ks.KVM_GUESTDBG_BLOCKIRQ)
        engine.set_debug_hook(self)

    def read_fpu(self):
        return self.engine.get_fpu_state()

    def _run(self, single_step: bool, breakpoints) -> Outcome:
        self._rewind_hlt()
        control, debugreg = guest_debug_control(single_step, breakpoints)
        if single_step and self._block_irq:
            control |= ks.KVM_GUESTDBG_BLOCKIRQ     # a step goes to the next instruction, not an ISR
        self._scan = breakpoints if len(breakpoints) > MAX_HW_BREAKPOINTS and not single_step else frozenset()
        self.engine.set_guest_debug(control, debugreg)
        if single_step:
            return self._step()
        return self.engine.run(None)

    def _step(self) -> Outcome:
        """One instruction. On this host (kvm_pvm) the step's KVM_EXIT_DEBUG is lost after
        an instruction whose write exits to the VMM (OUT, an MMIO store): the next
        instruction runs too (measured; reads are fine). For the common cases, a plain
        `out` and a `mov` store, the run is ended right after the write instead, the way a
        device's stop request ends it: KVM completes the instruction and runs nothing more.
        (String I/O and other MMIO writers are left alone: a stop there could split one
        exit's elements or fragments.)"""
        engine = self.engine
        bus_name = {"out": "ports", "mov": "mmio"}.get(self._mnemonic_at_pc())
        if bus_name is None:
            return engine.run(None)
        bus = getattr(engine, bus_name)
        stop = Outcome(DEBUG_STOP, detail="step over a write that exited to the VMM")
        setattr(engine, bus_name, _StopAfterWrite(bus, engine.control, stop))
        try:
            outcome = engine.run(None)
        finally:
            setattr(engine, bus_name, bus)
            if engine.control.stop is stop:
                engine.control.stop = None
        return outcome

    def _mnemonic_at_pc(self) -> str:
        state = self.engine.get_state()
        pc = pagewalk.linear_address(state, state.cs, state.rip)
        code, _ = pagewalk.read(pagewalk.Paging.of(state), self.memory, pc, disasm.MAX_INSN)
        size, text = disasm.decode_one(code, pc, state.bits()) if code else (0, "")
        return text.split(" ", 1)[0] if size else ""

    def _rewind_hlt(self):
        """A guest paused while halted (HLT with IF=1) goes back into its HLT when resumed,
        unless the debugger moved RIP meanwhile."""
        if self._halted_at is None:
            return
        state = self.engine.get_state()
        if state.rip == self._halted_at:
            state.rip -= 1                  # HLT is one byte (F4)
            self.engine.set_state(state)
        self._halted_at = None

    def _pause_engine(self) -> None:
        self.engine.kick()

    # --- the engine's debug hook --------------------------------------------------------------
    def on_debug_exit(self, exception: int, pc: int, dr6: int):
        if self._scan and pc not in self._scan:
            if self._pause.is_set():
                return Outcome(PAUSED, detail=f"paused at {pc:#x}", rip=pc)
            return None                     # single-stepping towards one of many breakpoints
        kind = "breakpoint" if dr6 & 0xF or pc in self._scan else "step"
        return Outcome(DEBUG_STOP, detail=f"{kind} at {pc:#x}", rip=pc)

    def on_kick(self, halted: bool):
        if not self._pause.is_set():
            return None
        state = self.engine.get_state()
        self._halted_at = state.rip if halted else None
        return Outcome(PAUSED, detail=f"paused at rip={state.rip:#x}", rip=state.rip)

    def close(self) -> None:
        self.engine.set_debug_hook(None)


class _StopAfterWrite:
    """A bus that asks the run to stop once a write has gone through (KvmTarget._step)."""

    def __init__(self, bus, control, stop: Outcome):
        self._bus, self._control, self._stop = bus, control, stop

    def read(self, address: int, size: int) -> int:
        return self._bus.read(address, size)

    def write(self, address: int, size: int, value: int) -> None:
        self._bus.write(address, size, value)
        self._control.request_stop(self._stop)      # a device's own stop request wins

    def __getattr__(self, name):
        return getattr(self._bus, name)


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
            dr7 |= 2 << (2 * i)             # Gi: global enable of DRi
        debugreg[7] = dr7
    else:
        control = 0                         # nothing to catch: full speed, debugging off
    return control, debugreg


# --- unicorn ------------------------------------------------------------------------------------
class UnicornTarget(EngineTarget):
    """UnicornEngine through code hooks, via the engine's debug port (see unicorn_port())."""

    def __init__(self, engine, memory):
        super().__init__(engine, memory)
        self.port = unicorn_port(engine)
        self._hooks = {}                    # breakpoint address -> hook handle
        self._step_hook = None
        self._stepped = 0

    def read_fpu(self):
        return self.port.fpu_state()

    def _run(self, single_step: bool, breakpoints) -> Outcome:
        self._sync_breakpoint_hooks(() if single_step else breakpoints)
        if single_step:
            self._stepped = 0
            self._step_hook = self.port.add_code_hook(self._on_step, 1, 0)
        try:
            return self.engine.run(None)
        finally:
            if self._step_hook is not None:
                self.port.remove_code_hook(self._step_hook)
                self._step_hook = None
            self.port.clear_stop()

    def _sync_breakpoint_hooks(self, wanted) -> None:
        for address in [a for a in self._hooks if a not in wanted]:
            self.port.remove_code_hook(self._hooks.pop(address))
        for address in wanted:
            if address not in self._hooks:
                self._hooks[address] = self.port.add_code_hook(self._on_breakpoint, address, address)

    def _on_breakpoint(self, address: int, size: int) -> None:
        self.port.stop_before(Outcome(DEBUG_STOP, detail=f"breakpoint at {address:#x}", rip=address))

    def _on_step(self, address: int, size: int) -> None:
        self._stepped += 1
        if self._stepped == 2:              # the instruction after the one stepped
            self.port.stop_before(Outcome(DEBUG_STOP, detail=f"step to {address:#x}", rip=address))

    def _pause_engine(self) -> None:
        self.port.pause(Outcome(PAUSED, detail="paused"))

    def _forget_pause(self) -> None:
        self.port.clear_stop()

    def close(self) -> None:
        self._sync_breakpoint_hooks(())


def unicorn_port(engine):
    """The unicorn engine's debug port (vmm/engines/unicorn_debug.py)."""
    return engine.debug_port()


def make_target(engine, memory) -> EngineTarget:
    """The DebugTarget for an engine (KvmEngine or UnicornEngine)."""
    if engine.name == "kvm":
        return KvmTarget(engine, memory)
    if engine.name == "unicorn":
        return UnicornTarget(engine, memory)
    raise ValueError(f"no debug target for engine {engine.name!r}")
