"""The container's init, in the process `create` forked: its set-up, the wait for `start`, the exec.

It runs as PID 1 of the new PID namespace (the parent unshared or joined it around the fork),
with the steps of runc's standard init (libcontainer/standard_init_linux.go, rootfs_linux.go):
 1. rlimits and oom_score_adj (while privileged on the host); wait for "go": the runtime has put
    this process into the container's cgroup. With a user namespace, a first process enters it,
    the runtime writes its id maps, and that process makes the PID namespace and forks the
    init, which goes on from here (_user_namespace_stage);
 2. join the namespaces given by path (files opened first, the mount namespace last, since a
    path may be visible only from the runtime's mount namespace), unshare the others;
 3. the root: every mount a slave, ROOTFS bound on itself, the config's mounts in order (mount
    points created), the device nodes and /dev symlinks unless /dev is a bind mount;
 4. "hooks": the runtime runs prestart and createRuntime; then createContainer hooks here;
 5. pivot_root (chroot with --no-pivot), the working directory made if missing, the terminal
    (if asked) from the container's own /dev/ptmx, read-only tmpfs and root, host and domain
    name, sysctls, read-only and masked paths;
 6. process.finalize(): no_new_privs, seccomp, user, capabilities, and the program looked up in
    the container's PATH (so `create` already fails for a missing program, as with runc);
 7. "ready"; the runtime writes the state and exits. This process blocks opening the exec FIFO
    for writing (through a directory fd opened before pivot_root) until `start` reads it;
 8. startContainer hooks, then execve.
Until "ready" every failure goes back over the channel and this process exits; it dies with the
runtime until then (PR_SET_PDEATHSIG), and not after (it must outlive `create`).
After pivot_root the host's files are out of reach, the project's own modules and libseccomp.so
included: everything this process may still need is imported or loaded before (preload()).
"""
import os
import signal

from ..container import devices as device_nodes
from ..container import mounts, namespaces, pty, seccomp
from ..host import container_calls as libc
from ..host.process import set_parent_death_signal
from . import channel, hooks, process as process_setup
from .errors import TERMINATING, ConfigError
from .state import OCI_VERSION

SETUP_FAILED = 127
CHILD_NAMESPACES = ("ipc", "uts", "network", "cgroup", "mount")     # pid: done by the parent around fork


class InitContext:
    """What the forked init needs from `create` (all plain data and fds)."""

    def __init__(self, spec, container_id, end, state_dir_fd, console, no_pivot, preserve_fds, cgroup_view, log):
        self.spec, self.id, self.end, self.state_dir_fd = spec, container_id, end, state_dir_fd
        self.console, self.no_pivot, self.preserve_fds = console, no_pivot, preserve_fds
        self.cgroup_view, self.log = cgroup_view, log


def main(ctx: InitContext) -> None:
    """The init's whole life; never returns."""
    try:
        set_parent_death_signal(signal.SIGKILL)
        for signum in (signal.SIGINT, *TERMINATING):        # the runtime's handlers are not the child's
            signal.signal(signum, signal.SIG_DFL)       # as PID 1 only handled signals reach it; keep it so
        preload(ctx.spec)
        if ctx.spec.has_namespace("user"):
            _user_namespace_stage(ctx)              # returns in the init, a grandchild of `create`
        else:
            _host_limits(ctx.spec)
        host_pid = channel.expect(ctx.end, "go")["pid"]
        _enter_namespaces(ctx.spec)
        read_only_later = _build_root(ctx)
        channel.send(ctx.end, "hooks")
        channel.expect(ctx.end, "continue")
        _enter_root(ctx, host_pid)
        program = _prepare_process(ctx, read_only_later)
        set_parent_death_signal(0)                  # from here on it outlives `create`
        channel.send(ctx.end, "ready")
        ctx.end.close()
    except BaseException as error:
        channel.send_error(ctx.end, error)
        os._exit(SETUP_FAILED)
    _wait_for_start_and_exec(ctx, host_pid, program)


def _enter_root(ctx, host_pid: int) -> None:
    """createContainer hooks, then pivot_root (chroot with --no-pivot or without a mount namespace)."""
    spec = ctx.spec
    os.chdir(spec.rootfs)
    hooks.run(spec.hooks["createContainer"], "createContainer", _state(ctx, "creating", host_pid))
    if not spec.has_namespace("mount"):
        os.chroot(".")                  # pivot_root would move the host's root
        os.chdir("/")
    elif ctx.no_pivot:
        mounts.move_root(spec.rootfs)
    else:
        mounts.pivot(spec.rootfs)
    mounts.apply_root_propagation(spec.rootfs_propagation)


def _prepare_process(ctx, read_only_later: list):
    """Steps 5-6 after the root change; (path, argv, env) of the program, or None without a process."""
    spec = ctx.spec
    process = spec.process or {}
    os.makedirs(process.get("cwd") or "/", 0o755, exist_ok=True)
    if process.get("terminal"):
        _terminal(ctx, process)
    mounts.finalize([p[len(spec.rootfs):] or "/" for p in read_only_later])
    if spec.root_readonly:
        mounts.make_root_read_only()
    _identity_and_kernel(spec)
    for path in spec.readonly_paths:
        mounts.read_only(path)
    for path in spec.masked_paths:
        mounts.mask(path)
    if spec.process is None:
        return None                     # `start` refuses such a container; nothing to look up
    return process_setup.finalize(process, spec.seccomp, ctx.log)


def preload(spec) -> None:
    """Import and load now what is used after pivot_root (module docstring)."""
    if spec.seccomp:
        seccomp.check(spec.seccomp)             # loads libseccomp.so.2
    if spec.hooks["createContainer"] or spec.hooks["startContainer"]:
        import subprocess                       # noqa: F401  (hooks.run imports it again from sys.modules)


def _host_limits(spec) -> None:
    """rlimits and oom_score_adj, set while this process is privileged on the host: raising either
    needs CAP_SYS_RESOURCE there, which a user namespace does not give."""
    process = spec.process or {}
    process_setup.set_rlimits(process.get("rlimits"))
    process_setup.set_oom_score_adj(process.get("oomScoreAdj"))


def _user_namespace_stage(ctx) -> None:
    """The first of two processes (create.py _fork_through_user_namespace): enter or make the user
    namespace, wait for the maps, become root in it, make the PID namespace, fork the init and
    report its pid. Only the init returns from here."""
    spec = ctx.spec
    channel.expect(ctx.end, "stage")
    _host_limits(spec)
    path = spec.namespace_path("user")
    if path:
        namespaces.join_path("user", path)
    else:
        namespaces.unshare_type("user")
        channel.send(ctx.end, "userns")
        channel.expect(ctx.end, "mapped")
    try:
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    except OSError:
        raise ConfigError("uid and gid 0 must be mapped in the user namespace (linux.uidMappings, "
                          "linux.gidMappings): the container's set-up runs as its root") from None
    pid_path = spec.namespace_path("pid")
    if pid_path:
        namespaces.join_path("pid", pid_path)
    elif spec.has_namespace("pid"):
        namespaces.unshare_type("pid")
    pid = os.fork()
    if pid == 0:
        return      # no parent-death signal now: its parent exits at once; `create` dying closes the channel
    channel.send(ctx.end, "child", pid=pid)
    os._exit(0)


def _enter_namespaces(spec) -> None:
    opened = []
    try:
        for kind in CHILD_NAMESPACES:
            path = spec.namespace_path(kind)
            if path:
                opened.append((kind, namespaces.open_path(kind, path), path))
        for kind, fd, path in opened:
            namespaces.join(kind, fd, path)
    finally:
        for _, fd, _ in opened:
            os.close(fd)
    for kind in CHILD_NAMESPACES:
        if spec.has_namespace(kind) and not spec.namespace_path(kind):
            namespaces.unshare_type(kind)


def _build_root(ctx) -> list:
    spec = ctx.spec
    if spec.has_namespace("mount"):
        mounts.prepare_root(spec.rootfs, spec.rootfs_propagation)
    else:       # the host's mount namespace: only ROOTFS bound on itself (undone by `delete`)
        libc.mount(spec.rootfs, spec.rootfs, None, libc.MS_BIND | libc.MS_REC)
    read_only_later = []
    for entry in spec.mounts:
        read_only_later += mounts.mount_entry(spec.rootfs, entry, spec.bundle, ctx.cgroup_view)
    dev_is_bound = any(m.options.bind and os.path.normpath(m.destination) == "/dev" for m in spec.mounts)
    if not dev_is_bound:
        for device in spec.devices:
            device_nodes.create(spec.rootfs, device)
        device_nodes.create_symlinks(spec.rootfs)
    return read_only_later


def _terminal(ctx, process: dict) -> None:
    master, slave, slave_path = pty.open_pair("/dev/ptmx")
    try:
        size = process.get("consoleSize") or {}
        if size.get("height") and size.get("width"):
            pty.set_size(master, size["height"], size["width"])
        console = "/dev/console"
        if not os.path.lexists(console):
            os.close(os.open(console, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        libc.mount(slave_path, console, None, libc.MS_BIND)
        pty.send_master(ctx.console, master, "/dev/ptmx")
        pty.become_controlling(slave)
    finally:
        os.close(master)
        os.close(slave)
        ctx.console.close()


def _identity_and_kernel(spec) -> None:
    if spec.hostname:
        if not spec.has_namespace("uts"):
            raise ConfigError("config.json sets hostname but has no uts namespace (it would rename the host)")
        libc.sethostname(spec.hostname)
    if spec.domainname:
        libc.setdomainname(spec.domainname)
    for key, value in spec.sysctl.items():
        path = "/proc/sys/" + key.replace(".", "/")
        try:
            with open(path, "w") as file:
                file.write(value)
        except OSError as error:
            raise ConfigError(f"cannot set sysctl {key} = {value}: {error.strerror}") from None


def _state(ctx, status: str, pid: int) -> dict:
    return {"ociVersion": OCI_VERSION, "id": ctx.id, "status": status, "pid": pid,
            "bundle": ctx.spec.bundle, "annotations": ctx.spec.annotations}


def handle_termination_while_created() -> None:
    """A created container is ended by SIGTERM, SIGINT or SIGHUP, as runc's waiting init is (its
    Go runtime handles them): as PID 1 of its namespace a signal without a handler would not even
    be delivered. execve puts the default dispositions back for the program."""
    def end(signum, frame):
        os._exit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, end)


def _wait_for_start_and_exec(ctx, host_pid: int, program) -> None:
    """Step 7-8: block on the FIFO until `start`, then the startContainer hooks and execve."""
    handle_termination_while_created()
    try:
        fifo = os.open("exec.fifo", os.O_WRONLY | os.O_CLOEXEC, dir_fd=ctx.state_dir_fd)
        os.write(fifo, b"0")
        os.close(fifo)
        os.close(ctx.state_dir_fd)
        hooks.run(ctx.spec.hooks["startContainer"], "startContainer", _state(ctx, "created", os.getpid()))
        process_setup.exec_program(*program, ctx.preserve_fds)
    except BaseException as error:      # `create` has gone: the container's stderr is all there is
        try:
            os.write(2, f"vmm-oci: {error}\n".encode())
        finally:
            os._exit(SETUP_FAILED)
    os._exit(SETUP_FAILED)
