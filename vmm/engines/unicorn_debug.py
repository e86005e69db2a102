"""The unicorn engine's debug port: the primitives instruction tracing and the gdb stub need
(vmm/debug/target.py and trace.py). It lives beside the engine because it works on the
engine's internals (its raw hooks, the CPU-state blob, the run's verdict); the rest of the
project reaches it only through UnicornEngine.debug_port().

The port, method by method:
  add_code_hook(callback, begin, end) -> handle
        UC_HOOK_CODE on [begin, end] (linear addresses; begin=1, end=0: every instruction),
        callback(address, size) before each instruction there. Translated code is flushed
        before the next run (a hook only reaches code translated after it was added).
  remove_code_hook(handle)
  stop_before(outcome)   from inside a code hook: the instruction about to execute does
        not; run() returns `outcome` with RIP at that instruction (uc_emu_stop from a code
        hook is exact: unicorn checks for a stop right after the hook; measured). With
        outcome None, run() goes on as after any stop of its own (it then looks at
        control.stop, the timeout...).
  pause(outcome)         from any thread: run() returns `outcome` soon, at an instruction
        boundary, without dropping any device access (unlike control.request_stop).
  clear_stop()           after run() returned: forget a stop or pause that is still pending.
  fetch(address, size) -> bytes   instruction bytes at a linear address (b"" if unmapped)
  code_bits() -> 16 | 32 | 64
  fpu_state() -> dict    xmm0-15 and mxcsr (x87 registers as zeros)
"""
from ..arch.x86 import paging
from ..outcome import Outcome
from .unicorn_state import code_bits

DEBUG_REASONS = ("debug-stop", "paused", "trace-limit")


class UnicornDebugPort:
    def __init__(self, engine):
        self.engine = engine

    # --- hooks ---------------------------------------------------------------------------------
    def add_code_hook(self, callback, begin: int = 1, end: int = 0) -> int:
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

    def remove_code_hook(self, handle: int) -> None:
        if self.engine._uc is None:
            return
        self.engine._hooks.remove(handle)
        self.engine.code_cache.flush_pending = True

    # --- stopping ------------------------------------------------------------------------------
    def stop_before(self, outcome) -> None:
        if outcome is not None:
            self.engine._run_end.outcome = outcome
        self.engine._uc.emu_stop()

    def pause(self, outcome: Outcome) -> None:
        engine = self.engine
        if engine._uc is None:
            return
        if engine._run_end.outcome is None:
            engine._run_end.outcome = outcome
        engine._kick()

    def clear_stop(self) -> None:
        run_end = self.engine._run_end
        if run_end.outcome is not None and run_end.outcome.reason in DEBUG_REASONS:
            run_end.outcome = None

    # --- reading the CPU -----------------------------------------------------------------------
    def _hidden(self):
        hs = self.engine._hs
        hs.save()
        return hs

    def code_bits(self) -> int:
        return code_bits(self._hidden().hflags)

    def fetch(self, address: int, size: int) -> bytes:
        return self.fetch_with_bits(address, size)[0]

    def fetch_with_bits(self, address: int, size: int):
        """(bytes, bits) with one read of the hidden state (the tracer's per-instruction call)."""
        hs = self._hidden()
        data, _ = paging.read(paging.Paging(hs.cr(0), hs.cr(3), hs.cr(4), hs.efer), self.engine.memory,
                              address, size)
        return data, code_bits(hs.hflags)

    def fpu_state(self) -> dict:
        from unicorn import x86_const as x
        uc = self.engine._uc
        xmm = [uc.reg_read(x.UC_X86_REG_XMM0 + i).to_bytes(16, "little") for i in range(16)]
        return {"st": [bytes(10)] * 8, "fctrl": uc.reg_read(x.UC_X86_REG_FPCW),
                "fstat": uc.reg_read(x.UC_X86_REG_FPSW), "ftag": 0, "fop": 0, "fioff": 0, "fooff": 0,
                "xmm": xmm, "mxcsr": uc.reg_read(x.UC_X86_REG_MXCSR)}
