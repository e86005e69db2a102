"""libseccomp through ctypes: the calls that build and load a seccomp filter (<seccomp.h>).

libseccomp.so.2 is the system's C library (Debian libseccomp2, installed with runc, crun, podman
and systemd); the policy it is given (the OCI profile's translation) is in
vmm/container/seccomp.py. Every call returns libseccomp's result: 0 or a negative errno.
"""
import ctypes


class Unavailable(OSError):
    """libseccomp.so.2 cannot be loaded here."""


class _ArgCmp(ctypes.Structure):
    """struct scmp_arg_cmp."""
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


_library = None


def library():
    """The loaded library (once); Unavailable if it is not installed."""
    global _library
    if _library is None:
        try:            # the soname itself: ctypes.util.find_library would run ldconfig (slow)
            lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        except OSError:
            raise Unavailable("libseccomp.so.2 is not installed") from None
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = (ctypes.c_uint32,)
        lib.seccomp_release.argtypes = (ctypes.c_void_p,)
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_arch_add.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        lib.seccomp_syscall_resolve_name.argtypes = (ctypes.c_char_p,)
        lib.seccomp_rule_add_array.argtypes = (ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp))
        lib.seccomp_attr_set.argtypes = (ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32)
        lib.seccomp_load.argtypes = (ctypes.c_void_p,)
        _library = lib
    return _library


class Filter:
    """One filter context: `with Filter(default_action) as f: f.add_rule(...); f.load()`."""

    def __init__(self, default_action: int):
        self.lib = library()
        self.ctx = self.lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError("seccomp_init failed (an invalid default action?)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.lib.seccomp_release(self.ctx)

    def set_attribute(self, attribute: int, value: int) -> int:
        return self.lib.seccomp_attr_set(self.ctx, attribute, value)

    def add_arch(self, name: str) -> int:
        return self.lib.seccomp_arch_add(self.ctx, self.lib.seccomp_arch_resolve_name(name.encode()))

    def syscall_number(self, name: str) -> int:
        """The number of a system call on this host, or a negative number if libseccomp knows none."""
        return self.lib.seccomp_syscall_resolve_name(name.encode())

    def add_rule(self, action: int, number: int, conditions) -> int:
        """conditions: [(argument index, operator, value, second value)]."""
        array = (_ArgCmp * max(1, len(conditions)))(*[_ArgCmp(*c) for c in conditions])
        return self.lib.seccomp_rule_add_array(self.ctx, action, number, len(conditions), array)

    def load(self) -> int:
        return self.lib.seccomp_load(self.ctx)
