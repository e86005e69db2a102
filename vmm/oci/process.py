"""The container's process, from its OCI `process` object: limits, user, capabilities, seccomp, exec.

Used by the container's init (after its root is in place) and by `exec` (after it joined the
container's namespaces). The order is runc's (standard_init_linux.go, finalizeNamespace), each
step needing a privilege a later one drops:
  rlimits, oom_score_adj                       while still privileged
  no_new_privs (if asked)
  seccomp, if no_new_privs is off              loading a filter then needs CAP_SYS_ADMIN
  bounding set; keep caps; stdio ownership, groups, gid, uid; cwd; capsets and ambient
  look the program up in the container's PATH
  seccomp, if no_new_privs is on               as late as possible: fewer calls to allow
Errors name what failed in words podman understands: its exit status for `podman run` is 127
when the message says "executable file not found" or "no such file or directory", 126 for
"permission denied" or "operation not permitted" (libpod's getOCIRuntimeError), as with runc.
"""
import errno
import os
import resource
import signal

from ..container import capabilities
from ..host import process as host_process
from ..container import seccomp as seccomp_module
from .errors import ConfigError, ContainerUnavailable, SetupFailed

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def environment(process: dict) -> dict:
    """The program's environment: config's env, plus HOME from the container's /etc/passwd."""
    env = dict(entry.split("=", 1) for entry in process.get("env") or ())
    if "HOME" not in env:
        env["HOME"] = _home(_user(process)[0])
    return env


def _user(process: dict) -> tuple:
    user = process.get("user") or {}
    return user.get("uid", 0), user.get("gid", 0), list(user.get("additionalGids") or ()), user.get("umask")


def _home(uid: int) -> str:
    try:
        with open("/etc/passwd") as file:
            for line in file:
                fields = line.rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid) and fields[5]:
                    return fields[5]
    except OSError:
        pass
    return "/"


def set_rlimits(rlimits) -> None:
    for limit in rlimits or ():
        name = limit["type"]
        number = getattr(resource, name, None) if name.startswith("RLIMIT_") else None
        if number is None:
            raise ConfigError(f"config.json: rlimit type {name} is unknown to this kernel")
        soft, hard = limit["soft"], limit["hard"]
        try:
            resource.setrlimit(number, (_rlim(soft), _rlim(hard)))
        except (OSError, ValueError) as error:
            current = resource.getrlimit(number)[1]
            ceiling = "unlimited" if current == resource.RLIM_INFINITY else current
            why = "operation not permitted" if isinstance(error, ValueError) or error.errno == errno.EPERM \
                else error.strerror
            raise ContainerUnavailable(
                f"error setting rlimit {name} to soft={soft} hard={hard}: {why}: this host's hard limit is "
                f"{ceiling} and the runtime may not raise it (no CAP_SYS_RESOURCE here); ask for at most "
                f"{ceiling} (podman: --ulimit {name[7:].lower()}={ceiling}:{ceiling})") from None


def _rlim(value: int) -> int:
    return resource.RLIM_INFINITY if value >= 2**64 - 1 else value


def set_oom_score_adj(value) -> None:
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "w") as file:
            file.write(str(value))
    except OSError as error:
        raise SetupFailed(f"cannot set oom_score_adj to {value}: {error.strerror}") from None


def finalize(process: dict, seccomp_profile, log) -> tuple[str, list, dict]:
    """Everything from no_new_privs to the late seccomp filter (module docstring).
    Returns (executable path, argv, env) for exec_program(). An ambient capability the config
    does not also make inheritable cannot be raised; like runc, that is only a debug message."""
    uid, gid, groups, umask = _user(process)
    env = environment(process)
    no_new_privs = bool(process.get("noNewPrivileges"))
    if no_new_privs:
        host_process.prctl(host_process.PR_SET_NO_NEW_PRIVS, 1)
    if seccomp_profile and not no_new_privs:
        _load_seccomp(seccomp_profile, log)
    numbers, cap_warnings = capabilities.resolve(process.get("capabilities") or {})
    for message in cap_warnings:
        log.warning(message)
    try:
        if process.get("capabilities") is not None:
            capabilities.drop_bounding(numbers["bounding"])
        capabilities.keep_across_setuid(True)
        _set_user(uid, gid, groups)
        _chdir(process.get("cwd") or "/")
        capabilities.keep_across_setuid(False)
        if process.get("capabilities") is not None:
            for message in capabilities.apply(numbers):
                log.debug(message)
    except OSError as error:
        raise SetupFailed(f"cannot switch to user {uid}:{gid} with the configured capabilities: "
                          f"{error.strerror}") from None
    os.umask(0o022 if umask is None else umask)
    argv = list(process["args"])
    path = lookup(argv[0], env)
    if seccomp_profile and no_new_privs:
        _load_seccomp(seccomp_profile, log)
    return path, argv, env


def _load_seccomp(profile, log) -> None:
    for message in seccomp_module.build_and_load(profile):
        log.warning(message)


def _set_user(uid: int, gid: int, groups: list) -> None:
    for fd in (0, 1, 2):
        try:
            info = os.fstat(fd)
        except OSError:
            continue
        if info.st_uid != uid and info.st_rdev != os.makedev(1, 3):     # not /dev/null
            try:
                os.fchown(fd, uid, gid)
            except OSError:
                pass                        # a pipe of another owner that we may not change: runc's choice too
    try:
        with open("/proc/self/setgroups") as file:
            allow_groups = file.read().strip() != "deny"
    except OSError:
        allow_groups = True
    if allow_groups:
        os.setgroups(groups)
    os.setgid(gid)
    os.setuid(uid)


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as error:
        raise SetupFailed(f"cannot change to the working directory {cwd}: {error.strerror.lower()}") from None


def lookup(name: str, env: dict) -> str:
    """execvp's search: NAME with a slash is taken as is, else found in PATH."""
    if "/" in name:
        if not os.path.exists(name):
            raise SetupFailed(f"exec: {name!r}: no such file or directory")
        if not _executable(name):           # a directory, or no x bit (Go's LookPath, which runc uses)
            raise SetupFailed(f"exec: {name!r}: permission denied")
        return name
    for directory in env.get("PATH", DEFAULT_PATH).split(":"):
        candidate = os.path.join(directory or ".", name)
        if _executable(candidate):
            return candidate
    raise SetupFailed(f"exec: {name!r}: executable file not found in $PATH")


def _executable(path: str) -> bool:
    return os.path.isfile(path) and os.stat(path).st_mode & 0o111 != 0


def exec_program(path: str, argv: list, env: dict, preserve_fds: int = 0) -> None:
    """execve the program with fds 0-2 and the preserved ones only (runc's UnsafeCloseFrom)."""
    os.closerange(3 + preserve_fds, os.sysconf("SC_OPEN_MAX"))
    for fd in range(3, 3 + preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    for signum in (signal.SIGPIPE, signal.SIGXFSZ):        # Python ignores them; programs expect defaults
        signal.signal(signum, signal.SIG_DFL)
    try:
        os.execve(path, argv, env)
    except OSError as error:
        if error.errno == errno.ENOENT:     # the file exists: its ELF or script interpreter does not
            raise SetupFailed(f"exec: {argv[0]!r}: no such file or directory (its interpreter is missing "
                              "from the root file system)") from None
        raise SetupFailed(f"exec: {argv[0]!r}: {error.strerror.lower()}") from None
