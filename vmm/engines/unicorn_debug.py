"""The unicorn engine's debug interface (the contract is EngineDebug in engines/base.py).

It lives beside the engine because it works on the engine's internals (its raw hooks, the
CPU-state blob, the run's verdict); everything else reaches it through UnicornEngine.debug().
  - Breakpoints: a UC_HOOK_CODE bounded to each breakpoint address; stepping: a UC_HOOK_CODE
    over everything that stops before the second instruction it sees, with interrupts held
    meanwhile (engine.irqs_held: like KVM_GUESTDBG_BLOCKIRQ, a step goes to the next
    instruction, not into an interrupt handler, unless the CPU was halted). A stop from a code hook
    (uc_emu_stop) is exact: unicorn checks for a stop right after the hook (measured), so the
    instruction about to execute does not, and the run's RIP is that instruction.
  - Translated code is flushed before the next run whenever a hook is added or removed (a
    hook only reaches code translated after it was added).
  - pause() from any thread sets the run's verdict (if none is set) and kicks the engine: the
    run ends before the next block, without dropping any device access (unlike a device's
    control.request_stop).
  - Tracing: a UC_HOOK_CODE over every instruction, in every ring.
"""
from ..arch.x86 import paging as x86_paging
from ..outcome import DEBUG_STOP, PAUSED, Outcome
from .base import EngineDebug
from .unicorn_state import code_bits

DEBUG_REASONS = (DEBUG_STOP, PAUSED)


class UnicornDebug(EngineDebug):
    def __init__(self, engine):
        super().__init__(engine)
        self._breakpoint_hooks = {}         # breakpoint address -> hook handle
        self._stepped = 0

    # --- registers -----------------------------------------------------------------------------
    def read_fpu(self) -> dict:
        """xmm0-15, mxcsr and the x87 control and status words (the x87 registers as zeros)."""
        from . import unicorn_lib as x
        uc = self.engine._uc
        xmm = [uc.reg_read(x.UC_X86_REG_XMM0 + i).to_bytes(16, "little") for i in range(16)]
        return {"st": [bytes(10)] * 8, "fctrl": uc.reg_read(x.UC_X86_REG_FPCW),
                "fstat": uc.reg_read(x.UC_X86_REG_FPSW), "ftag": 0, "fop": 0, "fioff": 0, "fooff": 0,
                "xmm": xmm, "mxcsr": uc.reg_read(x.UC_X86_REG_MXCSR)}

    def paging(self) -> x86_paging.Paging:
        return self.paging_of(self._hidden())

    @staticmethod
    def paging_of(hs) -> x86_paging.Paging:
        return x86_paging.Paging(hs.cr(0), hs.cr(3), hs.cr(4), hs.efer)

    # --- running -------------------------------------------------------------------------------
    def run(self, single_step: bool, breakpoints=()) -> Outcome:
        self._sync_breakpoint_hooks(() if single_step else breakpoints)
        step_hook = None
        if single_step:
            self._stepped = 0
            step_hook = self._add_code_hook(self._on_step)
        self.engine.irqs_held = single_step     # a step goes to the next instruction, not an ISR
        try:
            return self.engine.run(None)
        finally:
            self.engine.irqs_held = False
            if step_hook is not None:
                self._remove_code_hook(step_hook)
            self._forget_debug_stop()

    def pause(self) -> None:
        super().pause()
        engine = self.engine
        if engine._uc is None:
            return
        if engine._run_end.outcome is None:
            engine._run_end.outcome = Outcome(PAUSED, detail="paused")
        engine._kick()

    def clear_pause(self) -> None:
        super().clear_pause()
        self._forget_debug_stop()

    def close(self) -> None:
        self._sync_breakpoint_hooks(())

    def _sync_breakpoint_hooks(self, wanted) -> None:
        hooks = self._breakpoint_hooks
        for address in [a for a in hooks if a not in wanted]:
            self._remove_code_hook(hooks.pop(address))
        for address in wanted:
            if address not in hooks:
                hooks[address] = self._add_code_hook(self._on_breakpoint, address, address)

    def _on_breakpoint(self, address: int, size: int) -> None:
        self._stop_before(Outcome(DEBUG_STOP, detail=f"breakpoint at {address:#x}", rip=address))

    def _on_step(self, address: int, size: int) -> None:
        self._stepped += 1
        if self._stepped == 2:              # the instruction after the one stepped
            self._stop_before(Outcome(DEBUG_STOP, detail=f"step to {address:#x}", rip=address))

    def _forget_debug_stop(self) -> None:
        """After a run: a debugger's stop or pause that is still pending is not the next run's."""
        run_end = self.engine._run_end
        if run_end.outcome is not None and run_end.outcome.reason in DEBUG_REASONS:
            run_end.outcome = None

    # --- tracing -------------------------------------------------------------------------------
    def trace(self, tracer) -> "UnicornTraceFeed":
        return UnicornTraceFeed(self, tracer)

    # --- code hooks and exact stops ---------------------------------------------------------------
    def code_hook(self, callback, begin: int, end: int) -> int:
        """callback(address, size) before each instruction at linear [begin, end], for
        measurements (`bench syscalls` counts the kernel's instructions so, without a call
        into Python for the program's); remove_code_hook(handle) ends it."""
        return self._add_code_hook(callback, begin, end)

    def remove_code_hook(self, handle: int) -> None:
        self._remove_code_hook(handle)

    def _add_code_hook(self, callback, begin: int = 1, end: int = 0) -> int:
        """UC_HOOK_CODE on linear [begin, end] (begin=1, end=0: every instruction):
        callback(address, size) before each instruction there."""
        engine = self.engine
        fail = engine._run_end.fail

        def on_code(_uc, address, size, _ud):
            try:
                callback(address, size)
            except BaseException as exc:        # a bug in the hook: end the run with it
                fail(exc)

        handle = engine._hooks.code(on_code, begin, end)
        engine.code_cache.flush_pending = True
        return handle

    def _remove_code_hook(self, handle: int) -> None:
        if self.engine._uc is None:
            return
        self.engine._hooks.remove(handle)
        self.engine.code_cache.flush_pending = True

    def _stop_before(self, outcome) -> None:
        """From inside a code hook: the instruction about to execute does not; run() returns
        `outcome` with RIP at it. With None, run() goes on as after any stop of its own (it
        then looks at control.stop, the timeout...)."""
        if outcome is not None:
            self.engine._run_end.outcome = outcome
        self.engine._uc.emu_stop()

    def _hidden(self):
        hs = self.engine._hs
        hs.save()
        return hs

    def _fetch_with_bits(self, address: int, size: int):
        """(code bytes at a linear address, the code size in bits), with one read of the
        hidden state (the tracer's per-instruction call)."""
        hs = self._hidden()
        data, _ = x86_paging.read(self.paging_of(hs), self.memory, address, size)
        return data, code_bits(hs.hflags)


class UnicornTraceFeed:
    """Every instruction to the tracer, from a UC_HOOK_CODE over all addresses."""

    def __init__(self, debug: UnicornDebug, tracer):
        self._debug = debug
        self.tracer = tracer
        self.control = debug.engine.control
        self._handle = debug._add_code_hook(self._on_code)

    def _on_code(self, address: int, size: int) -> None:
        if self.control.stop is not None:
            self._debug._stop_before(None)      # a device asked to stop: KVM would not go on
            return
        code, bits = self._debug._fetch_with_bits(address, size)
        if not self.tracer.on_instruction(address, code, bits):
            self.detach()

    def detach(self) -> None:
        if self._handle is not None:
            self._debug._remove_code_hook(self._handle)
            self._handle = None
