"""The unicorn engine's debug port: the primitives instruction tracing and the gdb stub need
(vmm/debug/target.py and trace.py). It lives beside the engine because it works on the
engine's internals (the Uc handle, the hidden-state reader, the stop switch); the rest of
the project reaches it only through UnicornEngine.debug_port().

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
import ctypes

from ..debug import pagewalk
from ..outcome import Outcome
from . import unicorn_x86 as ux

DEBUG_REASONS = ("debug-stop", "paused", "trace-limit")


class UnicornDebugPort:
    def __init__(self, engine):
        self.engine = engine
        self._callbacks = {}            # handle -> ctypes callback (kept alive while hooked)

    # --- hooks ---------------------------------------------------------------------------------
    def add_code_hook(self, callback, begin: int = 1, end: int = 0) -> int:
        from unicorn import UC_HOOK_CODE
        from unicorn.unicorn_py3.unicorn import HOOK_CODE_CFUNC
        engine = self.engine

        def on_code(_uc, address, size, _ud):
            try:
                callback(address, size)
            except BaseException as exc:        # a bug in the hook: end the run with it
                engine._fail(exc)

        cfunc = HOOK_CODE_CFUNC(on_code)
        handle = ux.raw_hook(engine._uc, UC_HOOK_CODE, cfunc, begin, end)
        self._callbacks[handle] = cfunc
        # The engine keeps the thunk, not only this port: a caller that drops the port (and
        # the hook's owner with it: they reference each other) would otherwise let the
        # garbage collector free it while unicorn still calls it (a segfault, seen in tests).
        engine._callbacks.append(cfunc)
        engine._flush_pending = True
        return handle

    def remove_code_hook(self, handle: int) -> None:
        from unicorn.unicorn_py3.unicorn import uclib
        cfunc = self._callbacks.pop(handle, None)
        if cfunc is None or self.engine._uc is None:
            return
        uclib.uc_hook_del(self.engine._uc._uch, ctypes.c_size_t(handle))
        self.engine._flush_pending = True
        # unicorn frees the hook lazily: the engine keeps the callback alive (add_code_hook).

    # --- stopping ------------------------------------------------------------------------------
    def stop_before(self, outcome) -> None:
        if outcome is not None:
            self.engine._fatal = outcome
        self.engine._uc.emu_stop()

    def pause(self, outcome: Outcome) -> None:
        engine = self.engine
        if engine._uc is None:
            return
        if engine._fatal is None:
            engine._fatal = outcome
        engine._kick()

    def clear_stop(self) -> None:
        fatal = self.engine._fatal
        if fatal is not None and fatal.reason in DEBUG_REASONS:
            self.engine._fatal = None

    # --- reading the CPU -----------------------------------------------------------------------
    def _hidden(self):
        hs = self.engine._sys.hs
        hs.save()
        return hs

    def code_bits(self) -> int:
        return _bits(self._hidden().hflags)

    def fetch(self, address: int, size: int) -> bytes:
        hs = self._hidden()
        paging = pagewalk.Paging(hs.cr(0), hs.cr(3), hs.cr(4), hs.efer)
        data, _ = pagewalk.read(paging, self.engine.memory, address, size)
        return data

    def fetch_with_bits(self, address: int, size: int):
        """(bytes, bits) with one read of the hidden state (the tracer's per-instruction call)."""
        hs = self._hidden()
        paging = pagewalk.Paging(hs.cr(0), hs.cr(3), hs.cr(4), hs.efer)
        data, _ = pagewalk.read(paging, self.engine.memory, address, size)
        return data, _bits(hs.hflags)

    def fpu_state(self) -> dict:
        from unicorn import x86_const as x
        uc = self.engine._uc
        xmm = [uc.reg_read(x.UC_X86_REG_XMM0 + i).to_bytes(16, "little") for i in range(16)]
        return {"st": [bytes(10)] * 8, "fctrl": uc.reg_read(x.UC_X86_REG_FPCW),
                "fstat": uc.reg_read(x.UC_X86_REG_FPSW), "ftag": 0, "fop": 0, "fioff": 0, "fooff": 0,
                "xmm": xmm, "mxcsr": uc.reg_read(x.UC_X86_REG_MXCSR)}


def _bits(hflags: int) -> int:
    return 64 if hflags & ux.HF_CS64 else 32 if hflags & ux.HF_CS32 else 16
