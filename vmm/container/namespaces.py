"""Linux namespaces for one container: which kinds, how to enter them, what their errors mean.

A PID namespace applies to the children of the process that unshares it, and the first child
becomes its PID 1. The launcher therefore unshares the PID namespace in the parent just around
its fork, and then sets the parent's namespace for later children back to its own (setns on
/proc/self/ns/pid), so the calling program (a benchmark, a test runner) forks normally
afterwards. The child enters the other kinds itself, being single-threaded there.
"""
import errno
import os
import threading
from contextlib import contextmanager

from ..host import container_calls as libc
from .errors import ContainerUnavailable

# kind -> (clone flag, the kernel option that provides it)
KINDS = {
    "mount": (libc.CLONE_NEWNS, "CONFIG_NAMESPACES"),
    "pid": (libc.CLONE_NEWPID, "CONFIG_PID_NS"),
    "uts": (libc.CLONE_NEWUTS, "CONFIG_UTS_NS"),
    "ipc": (libc.CLONE_NEWIPC, "CONFIG_IPC_NS"),
    "network": (libc.CLONE_NEWNET, "CONFIG_NET_NS"),
}
CHILD_KINDS = ("mount", "uts", "ipc", "network")    # entered by the child after the fork
# OCI namespace type -> (clone flag, its name under /proc/PID/ns/)
OCI_TYPES = {
    "pid": (libc.CLONE_NEWPID, "pid"), "network": (libc.CLONE_NEWNET, "net"), "mount": (libc.CLONE_NEWNS, "mnt"),
    "ipc": (libc.CLONE_NEWIPC, "ipc"), "uts": (libc.CLONE_NEWUTS, "uts"), "user": (libc.CLONE_NEWUSER, "user"),
    "cgroup": (libc.CLONE_NEWCGROUP, "cgroup"), "time": (libc.CLONE_NEWTIME, "time"),
}

# Another thread must not fork between our unshare(CLONE_NEWPID) and the setns that undoes it.
_fork_lock = threading.Lock()


def unavailable(kind: str, error: OSError) -> ContainerUnavailable:
    """The one-line error for a failed unshare of `kind`."""
    flag, option = KINDS[kind]
    if error.errno == errno.EPERM:
        why = "not permitted: run as root (CAP_SYS_ADMIN), outside any sandbox that forbids unshare(2)"
    elif error.errno == errno.EINVAL:
        why = f"this kernel does not support them ({option})"
    elif error.errno == errno.ENOSPC:
        short = {"mount": "mnt", "network": "net"}.get(kind, kind)
        why = f"the limit in /proc/sys/user/max_{short}_namespaces is reached"
    else:
        why = error.strerror
    return ContainerUnavailable(f"cannot create a {kind} namespace: {why}")


def unshare(kind: str) -> None:
    try:
        libc.unshare(KINDS[kind][0])
    except OSError as error:
        raise unavailable(kind, error) from None


@contextmanager
def pid_namespace_for_children():
    """Children forked inside this block start a new PID namespace (the first is its PID 1)."""
    with _fork_lock:
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            unshare("pid")
            try:
                yield
            finally:
                libc.setns(own, libc.CLONE_NEWPID)
        finally:
            os.close(own)


def probe() -> str | None:
    """None if this process can create every namespace a container needs, else the reason.

    Forks a child that tries them (so this process's own namespaces stay as they are).
    """
    if os.geteuid() != 0:
        return "not root: containers need CAP_SYS_ADMIN"
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            for kind in KINDS:
                try:
                    unshare(kind)
                except ContainerUnavailable as error:
                    os.write(write_end, str(error).encode())
                    break
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        reason = reader.read().decode()
    os.waitpid(pid, 0)
    return reason or None


def open_path(kind: str, path: str) -> int:
    """An fd on namespace file `path`, checked to be a namespace (joined later with join())."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise ContainerUnavailable(f"cannot open the {kind} namespace {path}: {error.strerror}") from None
    return fd


def join(kind: str, fd: int, path: str) -> None:
    """setns into an existing namespace of type `kind` (EINVAL: `path` is another kind)."""
    try:
        libc.setns(fd, OCI_TYPES[kind][0])
    except OSError as error:
        if error.errno == errno.EINVAL:
            raise ContainerUnavailable(f"{path} is not a {kind} namespace") from None
        raise ContainerUnavailable(f"cannot join the {kind} namespace {path}: {error.strerror}") from None


def join_path(kind: str, path: str) -> None:
    """Open namespace file `path` and setns into it (for a path reachable now)."""
    fd = open_path(kind, path)
    try:
        join(kind, fd, path)
    finally:
        os.close(fd)


def unshare_type(kind: str) -> None:
    """unshare(2) one OCI namespace type, with the launcher's one-line errors."""
    try:
        libc.unshare(OCI_TYPES[kind][0])
    except OSError as error:
        if kind in KINDS:
            raise unavailable(kind, error) from None
        raise ContainerUnavailable(f"cannot create a {kind} namespace: {error.strerror}") from None
