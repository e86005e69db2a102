"""run_container: one program in new namespaces, a pivoted root and optional cgroup limits.

The parent's steps, each undone on every path (success, failure, exception, SIGINT, SIGTERM):
1. check the arguments and ROOTFS; create the cgroup with its limits (if any limit is asked);
2. fork, with the PID namespace for children unshared around the fork: the child is PID 1;
3. write the child's pid into the cgroup, then send it the one "go" byte;
4. read the error pipe: end-of-file means the program was executed; a message means the child's
   set-up failed, and it is raised here as the matching error class;
5. wait for the child; its exit status is returned (a signal death as 128 + signal).
Cleanup (kill the child if it still runs, reap it, remove the cgroup) runs with SIGINT and the
terminating signals blocked (vmm/signals.py), so a second signal cannot interrupt it.
Nothing is unmounted on the host: every mount is made inside the container's own mount
namespace, which the kernel discards with the container's last process.

The child (in launcher code until execve; it never returns into the caller's code):
enter the mount, UTS, IPC and network namespaces; set the host name; enter ROOTFS (rootfs.py);
wait for "go" (so it is in its cgroup before the program starts); restore default SIGPIPE and
SIGXFSZ (Python ignores them); execve the program. The error pipe is close-on-exec.
The child asks for SIGKILL when the launcher dies (PR_SET_PDEATHSIG), so a launcher killed with
SIGKILL leaves no container running; only its cgroup directory can remain then.
"""
import os
import signal

from .. import signals
from ..errors import ImageError, InputError, UsageError, VmmError
from ..host import container_calls as libc
from ..host.process import set_parent_death_signal
from . import cgroups, namespaces, rootfs as rootfs_module
from .errors import ContainerTerminated, ContainerUnavailable

DEFAULT_PATH = "/bin:/usr/bin:/sbin:/usr/sbin"
HOST_NAME_MAX = 64
SETUP_FAILED = 127              # the child's status when its set-up failed (reported on the pipe)

# Error classes the child may report by name through the error pipe.
_REPORTABLE = {cls.__name__: cls for cls in (VmmError, UsageError, InputError, ImageError, ContainerUnavailable)}


def run_container(rootfs, argv, memory=None, cpu_shares=None, hostname="container", *,
                  env=None, stdin=None, stdout=None, stderr=None) -> int:
    """Run argv[0] (a path inside ROOTFS, or a name looked up in PATH there) as PID 1 of a container.

    memory: bytes (int) or a size like "64M"; cpu_shares: 2..262144 (cgroup v1 cpu.shares).
    env: the program's environment (default PATH, HOME=/ and the caller's TERM).
    stdin/stdout/stderr: file descriptors or file objects for the program (default: inherited).
    Returns the program's exit status, 128 + N if signal N killed it (137: SIGKILL, as the
    OOM killer sends). Raises InputError, UsageError, ContainerUnavailable or VmmError for the
    launcher's own failures, KeyboardInterrupt on SIGINT, ContainerTerminated (128 + N) on a
    terminating signal N (SIGTERM, SIGHUP, SIGQUIT...: vmm/signals.py).
    """
    root = rootfs_module.check_rootfs(rootfs)
    argv = [os.fspath(arg) for arg in argv]
    if not argv or not argv[0]:
        raise UsageError("no program given to run in the container")
    if not hostname or len(hostname.encode()) > HOST_NAME_MAX:
        raise UsageError(f"host name must be 1 to {HOST_NAME_MAX} bytes, not {hostname!r}")
    if isinstance(memory, str):
        from ..config import parse_size     # here, not at the top: vmm.config costs start-up time
        memory = parse_size(memory)
    cgroups.check_limits(memory, cpu_shares)
    env = _default_env() if env is None else dict(env)
    stdio = [_fd(stream) for stream in (stdin, stdout, stderr)]

    with signals.handled(_terminated):
        cgroup = child = None
        try:
            if memory is not None or cpu_shares is not None:
                with signals.blocked():     # a signal between mkdir and `cgroup =` would leave it behind
                    cgroup = cgroups.Cgroup.create(memory=memory, cpu_shares=cpu_shares)
            child = _Child(root, argv, hostname, env, stdio)
            child.start(cgroup)
            return child.wait()
        finally:
            with signals.blocked():
                if child is not None:
                    child.kill_and_reap()
                if cgroup is not None:
                    cgroup.remove()


class _Child:
    """The container's PID 1, seen from the launcher."""

    def __init__(self, root, argv, hostname, env, stdio):
        self.root, self.argv, self.hostname, self.env, self.stdio = root, argv, hostname, env, stdio
        self.pid = None
        self.status = None      # the exit status once reaped

    def start(self, cgroup) -> None:
        go_read, go_write = os.pipe()
        error_read, error_write = os.pipe()
        try:
            with namespaces.pid_namespace_for_children():
                self.pid = os.fork()
                if self.pid == 0:
                    os.close(go_write)      # else the child never sees EOF if the launcher dies
                    os.close(error_read)
                    _child_main(self, go_read, error_write)     # never returns
        except BaseException as error:
            for fd in (go_read, go_write, error_read, error_write):
                os.close(fd)
            if isinstance(error, OSError):
                raise VmmError(f"cannot start the container process: {error.strerror}") from None
            raise
        os.close(go_read)
        os.close(error_write)
        attach_error = None
        try:
            try:
                if cgroup is not None:
                    cgroup.attach(self.pid)
                os.write(go_write, b"G")
            except (VmmError, BrokenPipeError) as error:
                attach_error = error        # the child reads EOF instead of "go" and exits
            finally:
                os.close(go_write)
            report = _read_all(error_read)
        finally:
            os.close(error_read)
        if report:
            self.kill_and_reap()
            raise _decode(report)
        if attach_error is not None:
            raise attach_error

    def wait(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        self.status = _exit_status(status)
        return self.status

    def kill_and_reap(self) -> None:
        if self.pid is None or self.status is not None:
            return
        try:
            os.kill(self.pid, signal.SIGKILL)
            self.wait()
        except ChildProcessError:           # already reaped elsewhere (SIGCHLD ignored)
            self.status = -1


def _child_main(child: _Child, go_read: int, error_write: int) -> None:
    """In the forked child: set up, wait for "go", execve. Always ends the process."""
    try:
        set_parent_death_signal(signal.SIGKILL)
        for kind in namespaces.CHILD_KINDS:
            namespaces.unshare(kind)
        libc.sethostname(child.hostname)
        rootfs_module.enter_rootfs(child.root)
        if os.read(go_read, 1) != b"G":
            os._exit(SETUP_FAILED)          # the launcher gave up (or died): report nothing
        for signum in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(signum, signal.SIG_DFL)
        for target, fd in enumerate(child.stdio):
            if fd is not None:
                if fd == target:
                    os.set_inheritable(fd, True)
                else:
                    os.dup2(fd, target)
        _exec(child.argv, child.env)
    except BaseException as error:
        try:
            os.write(error_write, _encode(error))
        finally:
            os._exit(SETUP_FAILED)
    os._exit(SETUP_FAILED)


def _terminated(signum: int) -> None:
    """While a container runs, a terminating signal raises ContainerTerminated (main thread)."""
    raise ContainerTerminated(signum)


def _exec(argv, env) -> None:
    """execve argv[0] (searched in PATH when it has no slash), in the container's root."""
    name = argv[0]
    search = env.get("PATH", DEFAULT_PATH) if "/" not in name else ""
    candidates = [os.path.join(d or ".", name) for d in search.split(":")] if search else [name]
    for path in candidates:
        try:
            os.execve(path, argv, env)
        except (FileNotFoundError, NotADirectoryError):
            if os.path.exists(path):        # execve's ENOENT for an existing file: its interpreter
                raise InputError(f"program {name} in the container cannot run: its ELF interpreter or "
                                 "script interpreter is missing from the root file system "
                                 "(use static programs)") from None
        except OSError as error:
            raise InputError(f"program {name} in the container cannot be executed: {error.strerror}") from None
    where = f"in PATH ({search})" if search else ""
    raise InputError(f"program {name} not found in the container's root file system {where}".rstrip())


def _encode(error: BaseException) -> bytes:
    if isinstance(error, VmmError):
        name = type(error).__name__ if type(error).__name__ in _REPORTABLE else "VmmError"
        return f"{name}\n{error}".encode()
    if isinstance(error, OSError):
        return f"VmmError\ncontainer set-up failed: {error.strerror}{f' ({error.filename})' if error.filename else ''}".encode()
    return f"VmmError\ncontainer set-up failed: {type(error).__name__}: {error}".encode()


def _decode(report: bytes) -> VmmError:
    name, _, message = report.decode(errors="replace").partition("\n")
    return _REPORTABLE.get(name, VmmError)(message)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 4096):
        chunks.append(chunk)
    return b"".join(chunks)


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _fd(stream):
    if stream is None or isinstance(stream, int):
        return stream
    return stream.fileno()


def _default_env() -> dict:
    env = {"PATH": DEFAULT_PATH, "HOME": "/"}
    if "TERM" in os.environ:
        env["TERM"] = os.environ["TERM"]
    return env


