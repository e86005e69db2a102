"""`exec`: another process inside a running container (`podman exec`, conmon's exec sessions).

The process is described by --process FILE (an OCI `process` object, what conmon passes) or by
the command line (--cwd, --env, --user, --tty, --cap, --no-new-privs, then the command).
Three processes are involved, because setns(2) into a PID namespace only applies to children:
  R  this command: sets itself child subreaper (when it waits), forks A, puts C into the
     container's cgroup, says "go", waits for "ready"; writes --pid-file; exits (--detach) or
     waits for C and exits with its status, forwarding SIGINT, SIGTERM, SIGHUP and SIGQUIT to it;
  A  joins the container's namespaces (the files /proc/INIT/ns/*, opened before any setns, the
     mount namespace last), forks C, tells R C's pid, exits;
  C  in the container's PID namespace and root: terminal (if asked), rlimits, oom_score_adj,
     process.finalize() (no_new_privs, the container's seccomp filter, user, capabilities, PATH
     lookup), "ready", execve. Its failures go back to R, which reports them and exits 71.
"""
import json
import os
import signal

from ..container import namespaces, pty, seccomp
from ..host import process as host_process
from . import channel, process as process_setup, spec as spec_module
from .errors import TERMINATING, ConfigError, ContainerUnavailable, InputError, UsageError, WrongState

SETUP_FAILED = 127
JOINED = ("user", "ipc", "uts", "network", "cgroup", "pid", "mount")   # user first: the others are its; mount
                                                                        # last: it changes the root


def process_from_args(args, config_process: dict) -> dict:
    """The process to run: --process FILE, or the command line over the container's own defaults."""
    if args.process:
        try:
            with open(args.process) as file:
                process = json.load(file)
        except FileNotFoundError:
            raise InputError(f"process file {args.process}: no such file") from None
        except ValueError as error:
            raise ConfigError(f"process file {args.process} is not valid JSON: {error}") from None
    else:
        if not args.process_args:
            raise UsageError("exec needs a command (or --process FILE)")
        process = {key: config_process.get(key) for key in ("env", "cwd", "user", "capabilities", "rlimits",
                                                            "noNewPrivileges") if key in config_process}
        command = args.process_args
        process["args"] = list(command[1:] if command[:1] == ["--"] else command)
        process["terminal"] = args.tty
    _apply_overrides(process, args)
    spec_module.check_process(process, "process")
    return process


def _apply_overrides(process: dict, args) -> None:
    if args.cwd:
        process["cwd"] = args.cwd
    if args.env:
        process["env"] = list(process.get("env") or []) + list(args.env)
    if args.user:
        uid, _, gid = args.user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise UsageError(f"--user {args.user!r}: give UID[:GID] as numbers")
        process["user"] = dict(process.get("user") or {}, uid=int(uid), gid=int(gid or 0))
    if args.additional_gids:
        process.setdefault("user", {"uid": 0, "gid": 0})["additionalGids"] = list(args.additional_gids)
    if args.no_new_privs:
        process["noNewPrivileges"] = True
    if args.cap:
        capabilities = process.setdefault("capabilities", {})
        for kind in ("bounding", "effective", "permitted"):
            capabilities[kind] = sorted(set(capabilities.get(kind) or []) | set(args.cap))
    if args.tty:
        process["terminal"] = True


def execute(runtime, args) -> int:
    container = runtime.state.load(args.container_id)
    if container.data.get("mode") == "vm":
        raise ContainerUnavailable(f"cannot exec in container {args.container_id}: it runs in a microVM, which "
                                   "has no way in for a second process")
    status = container.status()
    if status == "paused" and not args.ignore_paused:
        raise WrongState(f"cannot exec in container {args.container_id}: it is paused (resume it first)")
    if status not in ("running", "created", "paused"):
        raise WrongState(f"cannot exec in container {args.container_id}: it is {status}")
    with open(container.config_path()) as file:
        config = spec_module.from_json(json.load(file), container.data["bundle"])
    process = process_from_args(args, config.process or {})
    terminal = bool(process.get("terminal"))
    if terminal and not args.console_socket:
        raise UsageError("a terminal (--tty or process.terminal) needs a --console-socket to receive it")
    if args.console_socket and not terminal:
        raise UsageError("--console-socket was given but no terminal was asked for (--tty)")
    if not args.detach:
        host_process.prctl(host_process.PR_SET_CHILD_SUBREAPER, 1)
    ns_files = [(kind, f"/proc/{container.pid}/ns/{namespaces.OCI_TYPES[kind][1]}")
                for kind in JOINED if config.has_namespace(kind)]
    if config.seccomp:
        seccomp.check(config.seccomp)       # loads libseccomp here: the process cannot, once in the container's root
    console = pty.connect(args.console_socket) if args.console_socket else None
    pid = _start(config, process, ns_files, console, container, args.preserve_fds, runtime.log)
    if args.pid_file:
        from .create import write_pid_file
        write_pid_file(args.pid_file, pid)
    if args.detach:
        return 0
    from .run import wait_forwarding
    return wait_forwarding(pid)


def _start(config, process, ns_files, console, container, preserve_fds, log) -> int:
    parent_end, child_end = channel.pair()
    opened = [(kind, namespaces.open_path(kind, path), path) for kind, path in ns_files]
    helper = pid = 0
    try:
        helper = os.fork()
        if helper == 0:
            parent_end.close()
            _helper(config, process, opened, console, child_end, preserve_fds, log)    # never returns
        child_end.close()
        if console is not None:
            console.close()
        pid = channel.expect(parent_end, "child")["pid"]
        os.waitpid(helper, 0)
        helper = 0
        cgroup = container.cgroup
        if cgroup is not None:
            cgroup.attach(pid)
        channel.send(parent_end, "go", pid=pid)
        channel.expect(parent_end, "ready")
        return pid
    except BaseException:
        for victim in (pid, helper):
            if victim:
                try:
                    os.kill(victim, signal.SIGKILL)
                    os.waitpid(victim, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
        raise
    finally:
        parent_end.close()
        for _, fd, _ in opened:
            os.close(fd)


def _helper(config, process, opened, console, end, preserve_fds, log) -> None:
    """A: join the namespaces, fork C, report its pid; C: set up and exec."""
    try:
        for kind, fd, path in opened:
            namespaces.join(kind, fd, path)
        pid = os.fork()
        if pid == 0:
            _process(config, process, console, end, preserve_fds, log)      # never returns
        channel.send(end, "child", pid=pid)
        os._exit(0)
    except BaseException as error:
        channel.send_error(end, error)
        os._exit(SETUP_FAILED)


def _process(config, process, console, end, preserve_fds, log) -> None:
    try:
        channel.expect(end, "go")
        for signum in (signal.SIGINT, *TERMINATING):        # the runtime's handlers are not the child's
            signal.signal(signum, signal.SIG_DFL)
        if console is not None:
            master, slave, _ = pty.open_pair("/dev/ptmx")
            size = process.get("consoleSize") or {}
            if size.get("height") and size.get("width"):
                pty.set_size(master, size["height"], size["width"])
            pty.send_master(console, master, "/dev/ptmx")
            pty.become_controlling(slave)
            for fd in (master, slave):
                os.close(fd)
            console.close()
        process_setup.set_rlimits(process.get("rlimits"))
        process_setup.set_oom_score_adj(process.get("oomScoreAdj"))
        path, argv, env = process_setup.finalize(process, config.seccomp, log)
        channel.send(end, "ready")
        end.close()
        process_setup.exec_program(path, argv, env, preserve_fds)
    except BaseException as error:
        channel.send_error(end, error)
    os._exit(SETUP_FAILED)
