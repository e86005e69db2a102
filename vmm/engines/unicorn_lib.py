"""libunicorn (the C library of the unicorn 2.1.4 package) through ctypes, without unicorn's
Python binding.

Importing the binding costs about 30 ms (typing, pathlib, inspect, importlib.resources...),
more than a whole `vmm run` of QEMU's TCG takes; the engine needs only a few of the C API's
calls, which this module declares itself: Uc offers the part of the binding's Uc that the
engine, its calibration and its debug interface use, with the same names and arguments.
unicorn_binding.py builds the engine's own hooks and pointer work on top of it. The library
file is the one the unicorn package installs (unicorn_library.py finds it). The constants below are unicorn 2.1.4's (include/unicorn/unicorn.h and x86.h);
tests/test_unicorn_lib.py checks each against the package's own.
"""
import ctypes

from .unicorn_library import find_library

UC_API_MAJOR = 2

# unicorn.h
UC_ARCH_X86 = 4
UC_MODE_16, UC_MODE_32, UC_MODE_64 = 2, 4, 8
UC_ERR_OK = 0
UC_PROT_NONE, UC_PROT_READ, UC_PROT_WRITE, UC_PROT_EXEC, UC_PROT_ALL = 0, 1, 2, 4, 7
UC_HOOK_INTR, UC_HOOK_INSN, UC_HOOK_CODE, UC_HOOK_BLOCK = 1, 2, 4, 8
UC_HOOK_MEM_READ_UNMAPPED, UC_HOOK_MEM_WRITE_UNMAPPED, UC_HOOK_MEM_FETCH_UNMAPPED = 16, 32, 64
UC_HOOK_MEM_WRITE_PROT = 256
UC_HOOK_INSN_INVALID = 16384
UC_MEM_FETCH_UNMAPPED, UC_MEM_WRITE_PROT = 21, 22
UC_CTL_IO_WRITE, UC_CTL_IO_READ = 1, 2
UC_CTL_UC_USE_EXITS, UC_CTL_CPU_MODEL, UC_CTL_TB_REMOVE_CACHE, UC_CTL_TB_FLUSH, UC_CTL_TLB_FLUSH = 4, 7, 9, 10, 11
# x86.h
UC_CPU_X86_HASWELL = 19
UC_X86_INS_IN, UC_X86_INS_OUT, UC_X86_INS_SYSCALL, UC_X86_INS_CPUID = 218, 500, 699, 113
UC_X86_INS_RDTSC, UC_X86_INS_RDTSCP = 608, 609
UC_X86_REG_RAX, UC_X86_REG_RBP, UC_X86_REG_RBX, UC_X86_REG_RCX = 35, 36, 37, 38
UC_X86_REG_RDI, UC_X86_REG_RDX, UC_X86_REG_RIP, UC_X86_REG_RSI, UC_X86_REG_RSP = 39, 40, 41, 43, 44
UC_X86_REG_R8 = 106                    # R8..R15 are 106..113
UC_X86_REG_EAX, UC_X86_REG_ECX, UC_X86_REG_EDX, UC_X86_REG_EFLAGS = 19, 22, 24, 25
UC_X86_REG_IP = 34
UC_X86_REG_CS, UC_X86_REG_DS, UC_X86_REG_ES, UC_X86_REG_FS, UC_X86_REG_GS, UC_X86_REG_SS = 11, 17, 28, 32, 33, 49
UC_X86_REG_CR0, UC_X86_REG_CR2, UC_X86_REG_CR3, UC_X86_REG_CR4 = 50, 52, 53, 54
UC_X86_REG_FPSW, UC_X86_REG_XMM0 = 31, 122     # XMM0..XMM15 are 122..137
UC_X86_REG_IDTR, UC_X86_REG_GDTR, UC_X86_REG_LDTR, UC_X86_REG_TR = 242, 243, 244, 245
UC_X86_REG_FPCW, UC_X86_REG_MSR, UC_X86_REG_MXCSR, UC_X86_REG_RFLAGS = 246, 248, 249, 253
UC_X86_REG_FP0 = 82                    # FP0..FP7 (physical x87 registers) are 82..89
UC_X86_REG_FPTAG, UC_X86_REG_FIP, UC_X86_REG_FDP, UC_X86_REG_FOP = 247, 254, 256, 258
_TABLE_REGISTERS = (UC_X86_REG_IDTR, UC_X86_REG_GDTR, UC_X86_REG_LDTR, UC_X86_REG_TR)
_XMM_REGISTERS = range(UC_X86_REG_XMM0, UC_X86_REG_XMM0 + 32)
_FP_REGISTERS = range(UC_X86_REG_FP0, UC_X86_REG_FP0 + 8)

uc_engine = ctypes.c_void_p
uc_context = ctypes.c_void_p
uc_hook_h = ctypes.c_size_t

# Callback types (unicorn.h's uc_cb_* typedefs), each first taking the engine handle.
HOOK_INTR_CFUNC = ctypes.CFUNCTYPE(None, uc_engine, ctypes.c_uint32, ctypes.c_void_p)
HOOK_CODE_CFUNC = ctypes.CFUNCTYPE(None, uc_engine, ctypes.c_uint64, ctypes.c_uint32, ctypes.c_void_p)
HOOK_MEM_INVALID_CFUNC = ctypes.CFUNCTYPE(ctypes.c_bool, uc_engine, ctypes.c_int, ctypes.c_uint64, ctypes.c_int,
                                          ctypes.c_int64, ctypes.c_void_p)
HOOK_INSN_INVALID_CFUNC = ctypes.CFUNCTYPE(ctypes.c_bool, uc_engine, ctypes.c_void_p)
HOOK_INSN_IN_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint32, uc_engine, ctypes.c_uint32, ctypes.c_int, ctypes.c_void_p)
HOOK_INSN_OUT_CFUNC = ctypes.CFUNCTYPE(None, uc_engine, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint32,
                                       ctypes.c_void_p)
HOOK_INSN_SYSCALL_CFUNC = ctypes.CFUNCTYPE(None, uc_engine, ctypes.c_void_p)
HOOK_INSN_CPUID_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint32, uc_engine, ctypes.c_void_p)
MMIO_READ_CFUNC = ctypes.CFUNCTYPE(ctypes.c_uint64, uc_engine, ctypes.c_uint64, ctypes.c_uint, ctypes.c_void_p)
MMIO_WRITE_CFUNC = ctypes.CFUNCTYPE(None, uc_engine, ctypes.c_uint64, ctypes.c_uint, ctypes.c_uint64,
                                    ctypes.c_void_p)


class UcRegTable(ctypes.Structure):
    """uc_x86_mmr: GDTR, IDTR, LDTR and TR (selector and flags unused by GDTR and IDTR)."""
    _fields_ = [("selector", ctypes.c_uint16), ("base", ctypes.c_uint64), ("limit", ctypes.c_uint32),
                ("flags", ctypes.c_uint32)]


class UcRegFp(ctypes.Structure):
    """uc_x86_float80: an x87 register (64-bit mantissa, 16-bit sign and exponent)."""
    _fields_ = [("mantissa", ctypes.c_uint64), ("exponent", ctypes.c_uint16)]


class UcRegMsr(ctypes.Structure):
    """uc_x86_msr: reg_read/reg_write of UC_X86_REG_MSR."""
    _fields_ = [("rid", ctypes.c_uint32), ("value", ctypes.c_uint64)]


def _load(path):
    lib = ctypes.CDLL(path)
    u32, u64, s32, size_t, void_p, err = (ctypes.c_uint32, ctypes.c_uint64, ctypes.c_int32, ctypes.c_size_t,
                                          ctypes.c_void_p, ctypes.c_int)
    prototypes = {
        "uc_version": (u32, ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_int)),
        "uc_open": (err, u32, u32, ctypes.POINTER(uc_engine)),
        "uc_close": (err, uc_engine),
        "uc_strerror": (ctypes.c_char_p, err),
        "uc_errno": (err, uc_engine),
        "uc_emu_start": (err, uc_engine, u64, u64, u64, size_t),
        "uc_emu_stop": (err, uc_engine),
        "uc_mem_map": (err, uc_engine, u64, size_t, u32),
        "uc_mem_map_ptr": (err, uc_engine, u64, size_t, u32, void_p),
        "uc_mem_read": (err, uc_engine, u64, void_p, size_t),
        "uc_mem_write": (err, uc_engine, u64, void_p, size_t),
        "uc_mmio_map": (err, uc_engine, u64, size_t, void_p, void_p, void_p, void_p),
        "uc_reg_read": (err, uc_engine, s32, void_p),
        "uc_reg_write": (err, uc_engine, s32, void_p),
        "uc_hook_add": (err, uc_engine, ctypes.POINTER(uc_hook_h), s32, void_p, void_p, u64, u64),
        "uc_hook_del": (err, uc_engine, uc_hook_h),
        "uc_context_alloc": (err, uc_engine, ctypes.POINTER(uc_context)),
        "uc_context_save": (err, uc_engine, uc_context),
        "uc_context_restore": (err, uc_engine, uc_context),
        "uc_context_size": (size_t, uc_engine),
        "uc_context_free": (err, uc_context),
        "uc_ctl": (err, uc_engine, s32),         # variadic: the arguments follow
    }
    for name, (restype, *argtypes) in prototypes.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


LIBRARY_PATH = find_library()
lib = _load(LIBRARY_PATH)


def version() -> tuple:
    """(major, minor) of the loaded libunicorn."""
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.uc_version(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


class UcError(Exception):
    def __init__(self, errno: int):
        super().__init__(lib.uc_strerror(errno).decode(errors="replace"))
        self.errno = errno


def _check(status: int) -> None:
    if status != UC_ERR_OK:
        raise UcError(status)


class Context:
    """A saved CPU state (uc_context): bytes(context) is the whole blob."""

    def __init__(self, uch):
        self.context = uc_context()
        self.size = lib.uc_context_size(uch)
        _check(lib.uc_context_alloc(uch, ctypes.byref(self.context)))

    def __bytes__(self) -> bytes:
        return ctypes.string_at(self.context, self.size)

    def free(self) -> None:
        if self.context:
            lib.uc_context_free(self.context)
            self.context = uc_context()

    def __del__(self):
        try:
            self.free()
        except (AttributeError, TypeError):     # interpreter shutdown: the library may be gone
            pass


class Uc:
    """One unicorn engine (x86). close() frees it at once (each reserves a 1 GiB translation
    buffer); the callbacks registered on it must live until then (unicorn_binding.RawHooks)."""

    def __init__(self, arch: int, mode: int):
        self._uch = uc_engine()
        _check(lib.uc_open(arch, mode, ctypes.byref(self._uch)))
        self._value = ctypes.c_uint64()
        self._python_hooks = []

    def close(self) -> None:
        if self._uch:
            lib.uc_close(self._uch)
            self._uch = uc_engine()

    def __del__(self):
        try:
            self.close()
        except (AttributeError, TypeError):     # interpreter shutdown: the library may be gone
            pass

    # --- running ----------------------------------------------------------------------------
    def emu_start(self, begin: int, until: int, timeout: int = 0, count: int = 0) -> None:
        _check(lib.uc_emu_start(self._uch, begin, until, timeout, count))

    def emu_stop(self) -> None:
        _check(lib.uc_emu_stop(self._uch))

    # --- memory -------------------------------------------------------------------------------
    def mem_map(self, address: int, size: int, perms: int = UC_PROT_ALL) -> None:
        _check(lib.uc_mem_map(self._uch, address, size, perms))

    def mem_map_ptr(self, address: int, size: int, perms: int, pointer: int) -> None:
        _check(lib.uc_mem_map_ptr(self._uch, address, size, perms, pointer))

    def mem_write(self, address: int, data: bytes) -> None:
        data = bytes(data)
        _check(lib.uc_mem_write(self._uch, address, data, len(data)))

    def mem_read(self, address: int, size: int) -> bytearray:
        buffer = ctypes.create_string_buffer(size)
        _check(lib.uc_mem_read(self._uch, address, buffer, size))
        return bytearray(buffer.raw)

    # --- registers ----------------------------------------------------------------------------
    def reg_read(self, reg: int):
        """An int; (selector, base, limit, flags) for GDTR, IDTR, LDTR and TR; (mantissa,
        exponent) for FP0-7, as the binding gives them."""
        if reg in _TABLE_REGISTERS:
            table = UcRegTable()
            _check(lib.uc_reg_read(self._uch, reg, ctypes.byref(table)))
            return table.selector, table.base, table.limit, table.flags
        if reg in _FP_REGISTERS:
            fp = UcRegFp()
            _check(lib.uc_reg_read(self._uch, reg, ctypes.byref(fp)))
            return fp.mantissa, fp.exponent
        if reg in _XMM_REGISTERS:
            value = (ctypes.c_uint64 * 2)()
            _check(lib.uc_reg_read(self._uch, reg, value))
            return value[0] | value[1] << 64
        self._value.value = 0
        _check(lib.uc_reg_read(self._uch, reg, ctypes.byref(self._value)))
        return self._value.value

    def reg_write(self, reg: int, value) -> None:
        if reg in _TABLE_REGISTERS:
            _check(lib.uc_reg_write(self._uch, reg, ctypes.byref(UcRegTable(*value))))
            return
        if reg in _FP_REGISTERS:
            _check(lib.uc_reg_write(self._uch, reg, ctypes.byref(UcRegFp(*value))))
            return
        if reg in _XMM_REGISTERS:
            halves = (ctypes.c_uint64 * 2)(value & (1 << 64) - 1, value >> 64 & (1 << 64) - 1)
            _check(lib.uc_reg_write(self._uch, reg, halves))
            return
        self._value.value = value & 0xFFFF_FFFF_FFFF_FFFF
        _check(lib.uc_reg_write(self._uch, reg, ctypes.byref(self._value)))

    def msr_read(self, index: int) -> int:
        msr = UcRegMsr(rid=index)
        _check(lib.uc_reg_read(self._uch, UC_X86_REG_MSR, ctypes.byref(msr)))
        return msr.value

    def msr_write(self, index: int, value: int) -> None:
        _check(lib.uc_reg_write(self._uch, UC_X86_REG_MSR, ctypes.byref(UcRegMsr(rid=index, value=value))))

    # --- the CPU state as a blob ----------------------------------------------------------------
    def context_save(self) -> Context:
        context = Context(self._uch)
        self.context_update(context)
        return context

    def context_update(self, context: Context) -> None:
        """Save the CPU state into an existing Context (the binding's name for it)."""
        _check(lib.uc_context_save(self._uch, context.context))

    def context_restore(self, context: Context) -> None:
        _check(lib.uc_context_restore(self._uch, context.context))

    # --- uc_ctl ---------------------------------------------------------------------------------
    def ctl(self, control: int, direction: int, *args) -> None:
        """uc_ctl with the request encoded as UC_CTL_READ/WRITE do: direction in bits
        30-31, the number of arguments in bits 26-29."""
        _check(lib.uc_ctl(self._uch, direction << 30 | len(args) << 26 | control, *args))

    def ctl_set_cpu_model(self, model: int) -> None:
        self.ctl(UC_CTL_CPU_MODEL, UC_CTL_IO_WRITE, ctypes.c_int(model))

    def ctl_exits_enabled(self, enable: bool) -> None:
        self.ctl(UC_CTL_UC_USE_EXITS, UC_CTL_IO_WRITE, ctypes.c_int(enable))

    def ctl_remove_cache(self, start: int, end: int) -> None:
        self.ctl(UC_CTL_TB_REMOVE_CACHE, UC_CTL_IO_WRITE, ctypes.c_uint64(start), ctypes.c_uint64(end))

    def ctl_flush_tb(self) -> None:
        self.ctl(UC_CTL_TB_FLUSH, UC_CTL_IO_WRITE)

    def ctl_flush_tlb(self) -> None:
        self.ctl(UC_CTL_TLB_FLUSH, UC_CTL_IO_WRITE)

    # --- Python hooks (calibration only: the engine's own are unicorn_binding.RawHooks) --------------
    def hook_add(self, kind: int, callback, begin: int = 1, end: int = 0) -> int:
        """UC_HOOK_INTR or UC_HOOK_CODE calling callback(uc, ...) with this Uc; an exception
        in it is printed by ctypes, not raised (tests and calibration check their results)."""
        cfunc_type = {UC_HOOK_INTR: HOOK_INTR_CFUNC, UC_HOOK_CODE: HOOK_CODE_CFUNC}[kind]
        cfunc = cfunc_type(lambda _uch, *args: callback(self, *args))
        self._python_hooks.append(cfunc)
        handle = uc_hook_h()
        _check(lib.uc_hook_add(self._uch, ctypes.byref(handle), kind, ctypes.cast(cfunc, ctypes.c_void_p), None,
                               begin, end))
        return handle.value
