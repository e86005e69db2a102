"""All of the unicorn engine's pointer work, on top of libunicorn's C API (unicorn_lib.py).
The rest of the engine (unicorn.py and the modules it names) calls the functions and classes
here and never handles a pointer. The measurements behind every workaround are in the shared
notes, unicorn-2.1.4.md.

- Hidden CPU state (`HiddenState`). The public API cannot set a segment's hidden part in a
  64-bit engine, cannot raise the privilege level, does not expose an exception's error
  code, and never resets `old_exception` (so the second fault of a run becomes #DF). All of
  that lives in QEMU's CPUX86State, which uc_context_save/restore copy as a blob; we edit
  the blob, at the offsets unicorn_layout.py finds.
- Exact stops (`StopSwitch`). unicorn's own stops (timeout=, emu_stop from a hook or another
  thread) land in the middle of an instruction, and a resumed run repeats it; count= is
  exact but costs 5-12x. Instead, two UC_HOOK_BLOCK hooks call plain C functions of
  libunicorn at every block start: uc_errno (harmless) normally; to stop, the first hook's
  callback pointer is switched to uc_emu_stop, which runs before the next block's first
  instruction, and the check after it in the block prologue ends the run right there: exact,
  resumable, from any thread. (Two hooks, because unicorn compiles a lone hook's callback
  address into the block.) Whether a run ended that way or by HLT is read from
  uc_struct.stop_request. The pointer can also name a callback that decides per block
  (`StopSwitch.watch`).
- Plain ctypes callbacks (`RawHooks`, `FastRegisters`): unicorn's Python binding wraps every
  callback in two extra Python frames, and port I/O is the exit hot path, so the engine
  registers plain ctypes callbacks with the C library. An exception raised at a callback's very first bytecode (a signal: Ctrl-C often
  lands there) escapes its `try:`; ctypes hands it to sys.unraisablehook, and ours gives it
  back to the callback's owner.
- No `until` address (`no_exit_address`): at the end of every emu_start, unicorn drops the
  translated block at `until - 1` through the guest's page tables; with paging on that
  faults, and the swallowed fault turns the guest's next #GP into #DF. "Exits" mode with an
  empty exit list has no such address; runs end by the stop switch or HLT.
"""
import ctypes
import struct
import sys
import weakref

from . import unicorn_lib as uc_lib
from .unicorn_lib import UC_ERR_OK, UC_HOOK_BLOCK, UcError

SEGMENT_CACHE = struct.Struct("<I4xQII")    # SegmentCache: u32 selector, u64 base, u32 limit, u32 flags


class Unsupported(Exception):
    """This unicorn build does not look like the one the workarounds were written for."""


def _c_function(name) -> int:
    """The address of an exported libunicorn function."""
    return ctypes.cast(getattr(uc_lib.lib, name), ctypes.c_void_p).value


def _hook_add(uc, htype, cfunc, begin=1, end=0, *extra, user_data=None) -> int:
    """uc_hook_add with a ctypes callback (or a C function's address) that the caller keeps
    alive; returns the hook handle, which is the address of unicorn's struct hook."""
    handle = ctypes.c_size_t()
    status = uc_lib.lib.uc_hook_add(uc._uch, ctypes.byref(handle), htype, cfunc,
                                             ctypes.c_void_p(user_data), ctypes.c_uint64(begin),
                                             ctypes.c_uint64(end), *extra)
    if status != UC_ERR_OK:
        raise UcError(status)
    return handle.value


def uc_struct_address(uc) -> int:
    """The address of the engine's struct uc_struct (for calibration)."""
    return uc._uch.value


def peek(address: int, size: int) -> bytes:
    """`size` bytes of this process's memory at `address` (unicorn's own structures)."""
    return ctypes.string_at(address, size)


def bool_at(address: int):
    """A live view of the C bool at `address`: its .value reads it now."""
    return ctypes.c_bool.from_address(address)


def block_hook_at_c_function(uc, name: str, user_data=None) -> tuple:
    """A UC_HOOK_BLOCK whose callback is libunicorn's own function `name`: (handle, address
    of the function)."""
    callback = _c_function(name)
    return _hook_add(uc, UC_HOOK_BLOCK, ctypes.c_void_p(callback), 1, 0, user_data=user_data), callback


# --- the CPU-state blob ----------------------------------------------------------------------------
class HiddenState:
    """One engine's CPU-state blob: save() it, read or edit fields, restore() it."""

    def __init__(self, uc, lay):
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

    def i32(self, off):
        return struct.unpack_from("<i", self.buf, off)[0]

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
        self.set_table(self.lay.segs + 24 * index, selector, base, limit, flags)

    def table(self, off):
        """(selector, base, limit, flags) of the GDTR, IDTR, TR or LDTR cache at `off`."""
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

    @efer.setter
    def efer(self, value):
        self.set_u64(self.lay.efer, value)

    @property
    def error_code(self):
        return self.u32(self.lay.error_code)

    @property
    def exception_is_int(self):
        return self.i32(self.lay.exception_is_int) != 0

    def finish_exception(self):
        """What QEMU's do_interrupt does and unicorn skips: no exception is in flight."""
        struct.pack_into("<i", self.buf, self.lay.old_exception, -1)

    def exception_fields(self) -> list:
        """CR2, error_code, exception_is_int and old_exception: what a fault swallowed inside
        unicorn (ctl_remove_cache) leaves changed."""
        lay = self.lay
        return [self.u64(lay.cr + 16), self.u32(lay.error_code), self.u32(lay.exception_is_int),
                self.u32(lay.old_exception)]

    def set_exception_fields(self, values) -> None:
        lay = self.lay
        self.set_u64(lay.cr + 16, values[0])
        for off, value in zip((lay.error_code, lay.exception_is_int, lay.old_exception), values[1:]):
            self.set_u32(off, value)


# --- exact stops ------------------------------------------------------------------------------------
class StopSwitch:
    """Stops the CPU before the next translated block starts (module docstring)."""

    def __init__(self, uc, lay):
        self._idle, self._stop = _c_function("uc_errno"), _c_function("uc_emu_stop")
        handles = [_hook_add(uc, UC_HOOK_BLOCK, ctypes.c_void_p(self._idle)) for _ in range(2)]
        self._callback = ctypes.c_void_p.from_address(handles[0] + lay.hook_callback)
        if self._callback.value != self._idle:
            raise Unsupported("unicorn's struct hook layout changed")
        self._stop_request = ctypes.c_bool.from_address(uc._uch.value + lay.stop_request)
        self._emu_stop, self._uch = uc_lib.lib.uc_emu_stop, uc._uch

    def arm(self):
        """Safe from any thread and any callback: one aligned pointer store."""
        self._callback.value = self._stop

    def disarm(self):
        self._callback.value = self._idle

    def watch(self, address):
        """Call `address` at each block start instead, until the next arm() or disarm(): a
        block callback (RawHooks.block_callback) that decides when to stop, by calling
        stop_now() (stop before this block) or arm() (before the next one)."""
        self._callback.value = address

    def stop_now(self):
        """From a block callback: stop before the block that is about to run (uc_emu_stop)."""
        self._emu_stop(self._uch)

    @property
    def armed(self) -> bool:
        return self._callback.value == self._stop

    def stopped_run(self) -> bool:
        """After emu_start: True if the run ended by uc_emu_stop (this switch), False if it
        ended by itself (HLT)."""
        return self._stop_request.value


# --- callbacks without the binding's wrappers ---------------------------------------------------------
class FastRegisters:
    """uc_reg_read/uc_reg_write of one 64-bit register with a preallocated buffer, without
    the binding's layers (about 1 us instead of 4): for the run loop and interrupt delivery."""
    __slots__ = ("_read", "_write", "_uch", "_value", "_ref")

    def __init__(self, uc):
        lib = uc_lib.lib
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


class RawHooks:
    """Python functions registered as plain ctypes callbacks of one Uc. Each callback stays
    alive as long as the Uc (release() after uc_close); an exception that escapes one (see
    the module docstring) goes to `on_error(exc)`."""
    # instruction: (its UC_X86_INS_ number, the callback type). RDTSC and RDTSCP hooks are
    # CPUID-shaped (return 1 to skip unicorn's own); the Python binding refuses them, but
    # unicorn's C side takes them (shared notes, section 8).
    _INSNS = {"in": (uc_lib.UC_X86_INS_IN, uc_lib.HOOK_INSN_IN_CFUNC),
              "out": (uc_lib.UC_X86_INS_OUT, uc_lib.HOOK_INSN_OUT_CFUNC),
              "cpuid": (uc_lib.UC_X86_INS_CPUID, uc_lib.HOOK_INSN_CPUID_CFUNC),
              "syscall": (uc_lib.UC_X86_INS_SYSCALL, uc_lib.HOOK_INSN_SYSCALL_CFUNC),
              "rdtsc": (uc_lib.UC_X86_INS_RDTSC, uc_lib.HOOK_INSN_CPUID_CFUNC),
              "rdtscp": (uc_lib.UC_X86_INS_RDTSCP, uc_lib.HOOK_INSN_CPUID_CFUNC)}

    def __init__(self, uc, on_error):
        self.uc = uc
        self._keep = []
        try:                                # (a bound method must not keep its object alive)
            self._on_error = weakref.WeakMethod(on_error)
        except TypeError:
            self._on_error = lambda: on_error

    def _wrap(self, ctype, function):
        _own_callback(function, self._on_error)
        cfunc = ctype(function)
        self._keep.append(cfunc)
        return cfunc

    def insn(self, name: str, function) -> int:
        """UC_HOOK_INSN for "in" (returns the value), "out", "cpuid", "rdtsc" and "rdtscp"
        (return 1 to skip unicorn's own) or "syscall"."""
        insn, cfunc_type = self._INSNS[name]
        return _hook_add(self.uc, uc_lib.UC_HOOK_INSN, self._wrap(cfunc_type, function), 1, 0, ctypes.c_int(insn))

    def interrupt(self, function) -> int:
        """UC_HOOK_INTR: function(uc, vector, user_data) for every exception and INT n."""
        return _hook_add(self.uc, uc_lib.UC_HOOK_INTR, self._wrap(uc_lib.HOOK_INTR_CFUNC, function))

    def invalid_instruction(self, function) -> int:
        """UC_HOOK_INSN_INVALID (#UD): function(uc, user_data) -> True (handled)."""
        return _hook_add(self.uc, uc_lib.UC_HOOK_INSN_INVALID, self._wrap(uc_lib.HOOK_INSN_INVALID_CFUNC, function))

    def invalid_memory(self, function) -> int:
        """Unmapped reads, writes and fetches, and writes to read-only memory:
        function(uc, access, address, size, value, user_data) -> True to retry."""
        kinds = (uc_lib.UC_HOOK_MEM_READ_UNMAPPED | uc_lib.UC_HOOK_MEM_WRITE_UNMAPPED
                 | uc_lib.UC_HOOK_MEM_FETCH_UNMAPPED | uc_lib.UC_HOOK_MEM_WRITE_PROT)
        return _hook_add(self.uc, kinds, self._wrap(uc_lib.HOOK_MEM_INVALID_CFUNC, function))

    def code(self, function, begin: int = 1, end: int = 0) -> int:
        """UC_HOOK_CODE on [begin, end]: function(uc, address, size, user_data)."""
        return _hook_add(self.uc, uc_lib.UC_HOOK_CODE, self._wrap(uc_lib.HOOK_CODE_CFUNC, function), begin, end)

    def block_callback(self, function) -> int:
        """The C address of function(uc, address, size, user_data) as a block callback, for
        StopSwitch.watch()."""
        return ctypes.cast(self._wrap(uc_lib.HOOK_CODE_CFUNC, function), ctypes.c_void_p).value

    def mmio(self, start: int, size: int, read, write) -> None:
        """uc_mmio_map of [start, start+size): read(uc, offset, size, user_data) -> int,
        write(uc, offset, size, value, user_data)."""
        read_cfunc = self._wrap(uc_lib.MMIO_READ_CFUNC, read)
        write_cfunc = self._wrap(uc_lib.MMIO_WRITE_CFUNC, write)
        status = uc_lib.lib.uc_mmio_map(self.uc._uch, start, size, read_cfunc, None, write_cfunc, None)
        if status != UC_ERR_OK:
            raise UcError(status)

    def remove(self, handle: int) -> None:
        """uc_hook_del; unicorn frees the hook lazily, so its callback is kept until release()."""
        uc_lib.lib.uc_hook_del(self.uc._uch, ctypes.c_size_t(handle))

    def release(self) -> None:
        """After uc_close: the callbacks may go."""
        self._keep.clear()


_callback_owners = weakref.WeakKeyDictionary()     # Python callback -> WeakMethod of its on_error
_previous_unraisablehook = None


def _own_callback(function, on_error) -> None:
    global _previous_unraisablehook
    if _previous_unraisablehook is None:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _unraisable
    _callback_owners[function] = on_error


def _unraisable(info):
    owner = _callback_owners.get(info.object)
    on_error = owner() if owner is not None else None
    if on_error is not None and info.exc_value is not None:
        on_error(info.exc_value)
    else:
        _previous_unraisablehook(info)


# --- the Uc's lifetime ----------------------------------------------------------------------------
def no_exit_address(uc) -> None:
    """Make emu_start ignore `until` (module docstring)."""
    uc.ctl_exits_enabled(True)


def close_uc(uc) -> None:
    """uc_close now, not whenever the object is collected (each Uc reserves a 1 GiB
    translation buffer); the hooks go with it. Takes our Uc or the Python binding's."""
    close = getattr(uc, "close", None) or getattr(uc, "_Uc__finalizer", None)
    if close is not None:
        close()


def tb_invalidate_phys_range():
    """libunicorn's exported tb_invalidate_phys_range(uc, start, end) for x86-64 (start and
    end are RAM offsets), or None if this build does not export it."""
    function = getattr(uc_lib.lib, "tb_invalidate_phys_range_x86_64", None)
    if function is not None:
        function.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64]
        function.restype = None
    return function
