"""A process's seccomp filter from an OCI `linux.seccomp` object, built by libseccomp through ctypes.

The library is bound in vmm/host/seccomp.py. Why libseccomp and not a filter of our own: the runtime-spec defines every action, architecture
and operator as libseccomp's constant of that name, and a correct filter needs the system-call
tables of every architecture a profile lists (podman's default lists x86-64, x86 and x32) plus
libseccomp's handling of argument comparisons on 64-bit values. libseccomp.so.2 is the C library
that runc, crun and systemd use; it is installed with any of them (no Python package is added).
Without it, a config that asks for seccomp is refused with that reason.

The filter follows runc (libcontainer/seccomp/seccomp_linux.go):
- unknown system-call names are skipped (profiles list calls newer than this kernel);
- a rule whose action is the default action is skipped (libseccomp refuses it);
- conditions on the same argument twice become one rule per condition (libseccomp refuses
  them in one rule), else all conditions go in one rule;
- a rule libseccomp already has (EEXIST) is not an error: profiles repeat some;
- libseccomp is told not to set no_new_privs itself: that is `process.noNewPrivileges`'s job.
Loading needs CAP_SYS_ADMIN or no_new_privs, so the caller loads it before dropping
capabilities when noNewPrivileges is false, and last when it is true (runc's order).
"""
import errno

from ..errors import VmmError
from ..host import seccomp as binding
from .errors import ContainerUnavailable

ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_THREAD": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
           "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000, "SCMP_ACT_TRACE": 0x7ff00000,
           "SCMP_ACT_LOG": 0x7ffc0000, "SCMP_ACT_ALLOW": 0x7fff0000}
WITH_ERRNO = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")     # the low 16 bits carry errnoRet
OPERATORS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
             "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCHES = {"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32"}
FLAG_ATTRIBUTES = {"SECCOMP_FILTER_FLAG_TSYNC": 4, "SECCOMP_FILTER_FLAG_LOG": 6,
                   "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 7}    # enum scmp_filter_attr
ATTR_CTL_NNP = 3
MAX_ARGS = 6
MASK64 = 2**64 - 1


class SeccompError(VmmError):
    """A seccomp profile this runtime cannot load as written."""
    exit_status = 78            # EX_CONFIG, as the OCI runtime's other config errors


def available() -> None:
    """ContainerUnavailable, saying why, unless libseccomp can be loaded here (loads it)."""
    try:
        binding.library()
    except binding.Unavailable:
        raise ContainerUnavailable("linux.seccomp needs libseccomp (libseccomp.so.2, Debian package "
                                   "libseccomp2), which is not installed here") from None


def action(name, errno_ret=None) -> int:
    if name not in ACTIONS:
        supported = ", ".join(sorted(ACTIONS))
        raise SeccompError(f"linux.seccomp: action {name!r} is not supported here (supported: {supported})")
    value = ACTIONS[name]
    if name in WITH_ERRNO:
        value |= (errno.EPERM if errno_ret is None else int(errno_ret)) & 0xFFFF
    elif errno_ret is not None:
        raise SeccompError(f"linux.seccomp: action {name} takes no errnoRet")
    return value


def _conditions(args) -> list:
    conditions = []
    for arg in args or ():
        op = OPERATORS.get(arg.get("op"))
        index = arg.get("index")
        if op is None:
            raise SeccompError(f"linux.seccomp: unknown operator {arg.get('op')!r}")
        if not isinstance(index, int) or not 0 <= index < MAX_ARGS:
            raise SeccompError(f"linux.seccomp: argument index {index!r} is not 0..5")
        conditions.append((index, op, arg.get("value", 0) & MASK64, arg.get("valueTwo", 0) & MASK64))
    return conditions


def _check(result: int, what: str) -> None:
    if result < 0:
        raise SeccompError(f"linux.seccomp: {what}: {errno.errorcode.get(-result, result)}")


def build_and_load(profile: dict) -> list:
    """Load `profile` (an OCI linux.seccomp object) into this thread. Returns warnings."""
    available()
    if profile.get("listenerPath") or any(s.get("action") == "SCMP_ACT_NOTIFY" for s in profile.get("syscalls") or ()):
        raise SeccompError("linux.seccomp: SCMP_ACT_NOTIFY (a seccomp agent) is not supported by this runtime")
    default = action(profile.get("defaultAction"), profile.get("defaultErrnoRet"))
    warnings = []
    with binding.Filter(default) as seccomp_filter:
        _check(seccomp_filter.set_attribute(ATTR_CTL_NNP, 0), "cannot leave no_new_privs to the config")
        for flag in profile.get("flags") or ():
            if flag not in FLAG_ATTRIBUTES:
                raise SeccompError(f"linux.seccomp: flag {flag} is not supported here")
            _check(seccomp_filter.set_attribute(FLAG_ATTRIBUTES[flag], 1), f"flag {flag}")
        for arch in profile.get("architectures") or ():
            if arch not in ARCHES:
                warnings.append(f"seccomp architecture {arch} is not one of this host's; skipped")
                continue
            result = seccomp_filter.add_arch(ARCHES[arch])
            if result != -errno.EEXIST:
                _check(result, f"architecture {arch}")
        for rule in profile.get("syscalls") or ():
            act = action(rule.get("action"), rule.get("errnoRet"))
            if act == default:
                continue
            conditions = _conditions(rule.get("args"))
            indexes = [c[0] for c in conditions]
            groups = [[c] for c in conditions] if len(set(indexes)) < len(indexes) else [conditions]
            for name in rule.get("names") or ():
                number = seccomp_filter.syscall_number(name)
                if number < 0:
                    continue                # a call this libseccomp/kernel does not know
                for group in groups:
                    result = seccomp_filter.add_rule(act, number, group)
                    if result != -errno.EEXIST:     # the same rule twice (podman's profile has some)
                        _check(result, f"the rule for {name}")
        _check(seccomp_filter.load(), "cannot load the filter")
    return warnings


def check(profile: dict) -> None:
    """Refuse a profile this runtime cannot load, before anything is created (actions, operators);
    loads libseccomp now (the container's init cannot, once its root has changed)."""
    available()
    action(profile.get("defaultAction"), profile.get("defaultErrnoRet"))
    for rule in profile.get("syscalls") or ():
        if rule.get("action") != "SCMP_ACT_NOTIFY":
            action(rule.get("action"), rule.get("errnoRet"))
            _conditions(rule.get("args"))
