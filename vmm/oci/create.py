"""`create`: set a container up and leave its init waiting for `start` (runtime-spec lifecycle 1-5).

The runtime's side, in order; every step is undone if a later one fails (the spec: "generating
an error MUST leave the state of the environment as if the operation were never attempted"):
 1. read and check config.json (spec.py), refuse what cannot be honoured here;
 2. reserve ROOT/ID (state.json says "creating"), copy config.json there;
 3. the cgroup at linux.cgroupsPath (default: ID under this process's own cgroup) with its limits
    and device rules; the exec FIFO;
 4. connect to --console-socket (before the init's root changes, so the path still resolves);
 5. PID namespace: unshare it (or join the given one) for children, and fork the init (init.py);
 6. put the init into the cgroup, say "go"; when it says "hooks", run prestart and createRuntime
    hooks with the state (status "creating"); when it says "ready", record its pid and start time,
    write --pid-file, and leave.
The init is this process's child; when this process exits it is re-parented to the nearest
subreaper (conmon sets itself as one) or to PID 1, which reaps it when it ends.
"""
import json
import os
import pwd

from ..container import mounts, namespaces, pty
from ..container.cgroupfs import ContainerCgroup
from ..container.devices import DEFAULT_RULES
from ..container import seccomp as seccomp_module
from . import channel, hooks, init
from .errors import ConfigError, UsageError, VmmError
from .state import OCI_VERSION, process_stat, remove_dir


class Created:
    """What create() leaves for `run`: the container and its init's pid (a child of this process)."""

    def __init__(self, container, pid):
        self.container, self.pid = container, pid


def check(spec, console_socket, detached=True) -> None:
    """Refusals that need no set-up: a terminal without a socket, a seccomp profile that cannot be
    loaded. A config without a process is created (the spec allows it) and refused by `start`."""
    terminal = bool((spec.process or {}).get("terminal"))
    if terminal and not console_socket and detached:
        raise UsageError("process.terminal is true: a --console-socket is needed to receive the terminal")
    if console_socket and not terminal:
        raise UsageError("--console-socket was given but process.terminal is false")
    if spec.seccomp:
        seccomp_module.check(spec.seccomp)


def create(runtime, container_id: str, spec, pid_file=None, console_socket=None, no_pivot=False,
           preserve_fds=0, detached=True) -> Created:
    """Create the container of `spec` (spec.load(bundle)) in namespaces (module docstring)."""
    check(spec, console_socket, detached)

    def fork(container, cgroup, console):
        return _fork_init(runtime, spec, container, cgroup, console, no_pivot, preserve_fds)
    return make_container(runtime, container_id, spec, "namespaces", spec.resources,
                          list(spec.device_rules) + list(DEFAULT_RULES), console_socket, pid_file, fork)


def make_container(runtime, container_id, spec, mode, resources, device_rules, console_socket, pid_file,
                   fork) -> Created:
    """Steps 2-6 for either mode: the state, the config's copy, the cgroup, the FIFO, the console
    socket, then fork(container, cgroup, console) -> the init's pid; all undone if one fails."""
    try:
        owner = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        owner = str(os.getuid())
    container = runtime.state.reserve(container_id, {
        "bundle": spec.bundle, "rootfs": spec.rootfs, "annotations": spec.annotations, "mode": mode,
        "owner": owner})
    cgroup = console = None
    pid = 0
    if mode == "namespaces" and not spec.has_namespace("mount"):   # its mounts land in the host's
        container.data["host_mounts"] = list(mounts.mounts_under(spec.rootfs))      # namespace: note what was there
    try:
        with open(container.config_path(), "w") as file:
            json.dump(spec.raw, file)
        cgroup, warnings = ContainerCgroup.create(cgroup_path(spec, container_id, runtime), resources, device_rules)
        for message in warnings:
            runtime.log.warning(message)
        container.data["cgroup"] = cgroup.to_json()
        container.save()
        os.mkfifo(container.fifo, 0o622)
        os.chmod(container.fifo, 0o622)
        if console_socket:
            console = _connect(console_socket)
        pid = fork(container, cgroup, console)
        found = process_stat(pid)
        container.data.update(pid=pid, start_time=found[1] if found else None, creating=False)
        container.data.pop("creator", None)
        container.save()
        if pid_file:
            write_pid_file(pid_file, pid)
    except BaseException:
        _undo(pid, cgroup, container)
        raise
    finally:
        if console is not None:
            console.close()
    return Created(container, pid)


def cgroup_path(spec, container_id: str, runtime) -> str:
    """linux.cgroupsPath, or ID under this process's cgroup; systemd's "slice:prefix:name" form
    (--systemd-cgroup) becomes the path systemd would give it, managed here through cgroupfs."""
    path = spec.cgroups_path or container_id
    if not runtime.systemd_cgroup:
        return path
    parts = path.split(":")
    if len(parts) != 3:
        raise ConfigError(f"linux.cgroupsPath {path!r} is not systemd's slice:prefix:name form (--systemd-cgroup)")
    slice_name, prefix, name = parts
    slice_name = slice_name or "system.slice"
    pieces = slice_name[:-len(".slice")].split("-") if slice_name.endswith(".slice") else [slice_name]
    expanded = ["-".join(pieces[:i + 1]) + ".slice" for i in range(len(pieces))]
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope" if prefix else f"{name}.scope"
    runtime.log.warning("--systemd-cgroup: the cgroup is made directly in the cgroup file system; systemd is "
                        "not told about it")
    return "/" + "/".join(expanded + [unit])


def _connect(path: str):
    try:
        return pty.connect(path)
    except OSError as error:
        raise UsageError(f"cannot connect to the console socket {path}: {error.strerror}") from None


def _fork_init(runtime, spec, container, cgroup, console, no_pivot, preserve_fds) -> int:
    parent_end, child_end = channel.pair()
    state_dir_fd = os.open(container.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    pid = 0
    try:
        context = init.InitContext(spec, container.id, child_end, state_dir_fd, console, no_pivot, preserve_fds,
                                   cgroup.mount_view(), runtime.log)
        if spec.has_namespace("user"):
            pid = _fork_through_user_namespace(spec, cgroup, parent_end, lambda: _child(context, parent_end))
            child_end.close()
        else:
            pid = _fork_in_pid_namespace(spec, lambda: _child(context, parent_end))
            child_end.close()
            cgroup.attach(pid)
        channel.send(parent_end, "go", pid=pid)
        channel.expect(parent_end, "hooks")
        state = {"ociVersion": OCI_VERSION, "id": container.id, "status": "creating", "pid": pid,
                 "bundle": spec.bundle, "annotations": spec.annotations}
        container.data["pid"] = pid
        container.save()
        hooks.run(spec.hooks["prestart"], "prestart", state)
        hooks.run(spec.hooks["createRuntime"], "createRuntime", state)
        channel.send(parent_end, "continue")
        channel.expect(parent_end, "ready")
        return pid
    except BaseException:
        if pid:
            kill_and_reap(pid)
        raise
    finally:
        parent_end.close()
        if not child_end._closed:
            child_end.close()
        os.close(state_dir_fd)


def _fork_through_user_namespace(spec, cgroup, parent_end, child_main) -> int:
    """With a user namespace the init is a grandchild: the child enters the user namespace, this
    process writes its uid and gid maps, then the child makes the PID namespace (which must belong
    to the user namespace, or proc could not be mounted in it) and forks the init, whose pid it
    reports (runc's nsexec does the same in C). Returns the init's pid; the child is reaped."""
    stage = os.fork()
    if stage == 0:
        child_main()                # runs init.main, which sees the user namespace and stages itself
    try:
        cgroup.attach(stage)        # the init inherits the cgroup from it
        channel.send(parent_end, "stage", pid=stage)
        if not spec.namespace_path("user"):
            channel.expect(parent_end, "userns")
            _write_id_maps(stage, spec)
            channel.send(parent_end, "mapped")
        pid = channel.expect(parent_end, "child")["pid"]
    except BaseException:
        kill_and_reap(stage)
        raise
    os.waitpid(stage, 0)
    return pid


def _write_id_maps(pid: int, spec) -> None:
    for name, mappings in (("uid_map", spec.uid_mappings), ("gid_map", spec.gid_mappings)):
        text = "".join(f"{inside} {outside} {size}\n" for inside, outside, size in mappings)
        try:
            with open(f"/proc/{pid}/{name}", "w") as file:
                file.write(text)
        except OSError as error:
            raise ConfigError(f"cannot write the {name} of the user namespace ({text.strip()!r}): "
                              f"{error.strerror}") from None


def _child(context, parent_end) -> None:
    try:
        parent_end.close()
        init.main(context)      # never returns...
    finally:
        os._exit(init.SETUP_FAILED)     # ...nor may an early signal make this copy run create's code


def _fork_in_pid_namespace(spec, child_main) -> int:
    """Fork the init inside the container's PID namespace (new, joined by path, or the host's)."""
    path = spec.namespace_path("pid")
    if spec.has_namespace("pid") and not path:
        with namespaces.pid_namespace_for_children():
            pid = os.fork()
            if pid == 0:
                child_main()
            return pid
    if path:
        fd = namespaces.open_path("pid", path)
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            namespaces.join("pid", fd, path)
            pid = os.fork()
            if pid == 0:
                child_main()
            namespaces.join("pid", own, "/proc/self/ns/pid")
            return pid
        finally:
            os.close(fd)
            os.close(own)
    pid = os.fork()
    if pid == 0:
        child_main()
    return pid


def kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def write_pid_file(path: str, pid: int) -> None:
    """Write the pid atomically (a reader never sees an empty file), as runc does."""
    path = os.path.abspath(path)
    temporary = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp")
    try:
        with open(temporary, "w") as file:
            file.write(str(pid))
        os.replace(temporary, path)
    except OSError as error:
        raise VmmError(f"cannot write the pid file {path}: {error.strerror}") from None


def _undo(pid: int, cgroup, container) -> None:
    if pid:
        kill_and_reap(pid)
    container.release_host_mounts()
    if cgroup is not None:
        try:
            cgroup.remove()
        except VmmError:
            pass
    remove_dir(container.dir)


