"""The VM mode (annotation org.pyvmm.runtime=vm, or the command `vmm-oci-vm`): the container's
process runs inside a microVM booted on the bundle's root file system (`vmm run --rootfs`).

The container's "init" is the VMM process: `create` forks it, puts it into the container's
cgroup, and it waits on the exec FIFO as a namespace init does; `start` releases it and it
becomes `vmm run --rootfs ROOTFS --mem SIZE -- ARGS...` (an execve of the venv's `vmm`, so its
pid, which `state` reports, stays the same). So:
  - args: the program and its arguments after `--` (the tiny kernel looks the program up in
    /bin:/usr/bin:/sbin:/usr/sbin of the root file system);
  - linux.resources.memory.limit: the guest's RAM (default 64 MiB); the VMM process itself is
    not held to it, since guest RAM is only part of what it maps. Other limits (pids, cpu)
    apply to the VMM process through its cgroup; device rules do not (they would deny it
    /dev/kvm; the guest reaches no host device anyway);
  - stdin, stdout, stderr: the VMM's, which are conmon's pipes, or a terminal whose master end
    goes to --console-socket (the guest's serial console is that terminal);
  - the exit status: the guest program's, as `vmm run` reports it;
  - kill: signals go to the VMM (SIGTERM stops the VM cleanly, SIGKILL ends it); pause and
    resume freeze the VMM's cgroup; exec is refused (there is no way into the guest);
  - hooks: prestart and createRuntime run in `create`, poststart in `start`, poststop in
    `delete`; createContainer and startContainer have no container namespace to run in and
    are refused.
The namespaces, mounts, devices, capabilities and seccomp of the config are not applied: the
VM is the isolation boundary (Kata Containers makes the same choice for the sandbox VM).
"""
import os
import signal
import sys

from ..container import pty
from ..host.process import set_parent_death_signal
from . import channel, hooks
from .init import handle_termination_while_created
from .errors import TERMINATING, ConfigError, ContainerUnavailable, UsageError
from .state import OCI_VERSION

DEFAULT_MEM = 64 << 20
PAGE = 4096
SETUP_FAILED = 127


def unavailable_reason() -> str | None:
    """Why the VM mode cannot run here, or None."""
    from ..config import MachineConfig
    if "rootfs" not in MachineConfig.__record_fields__:
        return "the VM mode needs `vmm run --rootfs` (issue 13), which is not in this build"
    if not os.path.exists(_vmm_script()):
        return f"{_vmm_script()} is not installed"
    return None


def _vmm_script() -> str:
    return os.path.join(os.path.dirname(sys.executable), "vmm")


def vmm_argv(spec) -> list:
    """The `vmm run` command line of the container's VM."""
    process = spec.process or {}
    args = list(process.get("args") or [])
    if not args:
        raise ConfigError("config.json: process.args must name the program to run in the VM")
    for arg in args:
        if not arg or any(c.isspace() for c in arg):
            raise ConfigError(f"config.json: process.args {arg!r} is empty or holds white space, which the "
                              "VM's kernel command line cannot carry")
    limit = ((spec.resources.get("memory") or {}).get("limit"))
    mem = DEFAULT_MEM if limit in (None, -1) else max(PAGE, limit // PAGE * PAGE)
    return [_vmm_script(), "run", "--rootfs", spec.rootfs, "--mem", str(mem), "--", *args]


def create_vm(runtime, container_id, spec, pid_file=None, console_socket=None, no_pivot=False, preserve_fds=0,
              detached=True):
    from .create import make_container
    reason = unavailable_reason()
    if reason:
        raise ContainerUnavailable(reason)
    if spec.process is None:
        raise ConfigError("config.json has no process: a VM container needs the program to run")
    if spec.hooks["createContainer"] or spec.hooks["startContainer"]:
        raise ConfigError("createContainer and startContainer hooks run in the container's namespaces, which a "
                          "VM-mode container does not have")
    terminal = bool(spec.process.get("terminal"))
    if terminal and not console_socket:
        raise UsageError("process.terminal is true: a --console-socket is needed to receive the terminal")
    argv = vmm_argv(spec)
    resources = {key: value for key, value in spec.resources.items() if key not in ("memory", "devices")}

    def fork(container, cgroup, console):
        return _fork_vmm(container, cgroup, console, argv, terminal, spec)
    return make_container(runtime, container_id, spec, "vm", resources, (), console_socket, pid_file, fork)


def _fork_vmm(container, cgroup, console, argv, terminal, spec) -> int:
    parent_end, child_end = channel.pair()
    state_dir_fd = os.open(container.dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:
            try:
                parent_end.close()
                _vmm_process(child_end, state_dir_fd, console, argv, terminal, spec)
            finally:
                os._exit(SETUP_FAILED)
        child_end.close()
        cgroup.attach(pid)
        state = {"ociVersion": OCI_VERSION, "id": container.id, "status": "creating", "pid": pid,
                 "bundle": spec.bundle, "annotations": spec.annotations}
        hooks.run(spec.hooks["prestart"], "prestart", state)
        hooks.run(spec.hooks["createRuntime"], "createRuntime", state)
        channel.send(parent_end, "go", pid=pid)
        channel.expect(parent_end, "ready")
        return pid
    finally:
        parent_end.close()
        if not child_end._closed:
            child_end.close()
        os.close(state_dir_fd)


def _vmm_process(end, state_dir_fd, console, argv, terminal, spec) -> None:
    """In the VMM process: terminal, "ready", the FIFO wait, then become `vmm run`."""
    try:
        set_parent_death_signal(signal.SIGKILL)
        for signum in (signal.SIGINT, *TERMINATING):        # the runtime's handlers are not the child's
            signal.signal(signum, signal.SIG_DFL)
        channel.expect(end, "go")
        if terminal:
            master, slave, _ = pty.open_pair("/dev/ptmx")          # the host's: there is no container devpts
            size = spec.process.get("consoleSize") or {}
            if size.get("height") and size.get("width"):
                pty.set_size(master, size["height"], size["width"])
            pty.send_master(console, master, "/dev/ptmx")
            pty.become_controlling(slave)
            os.close(master)
            os.close(slave)
        os.chdir(spec.rootfs)
        set_parent_death_signal(0)
        channel.send(end, "ready")
        end.close()
    except BaseException as error:
        channel.send_error(end, error)
        os._exit(SETUP_FAILED)
    handle_termination_while_created()
    try:
        fifo = os.open("exec.fifo", os.O_WRONLY | os.O_CLOEXEC, dir_fd=state_dir_fd)
        os.write(fifo, b"0")
        os.close(fifo)
        os.execv(argv[0], argv)
    except OSError as error:
        os.write(2, f"vmm-oci: cannot start the VM: {error.strerror}\n".encode())
    os._exit(SETUP_FAILED)
