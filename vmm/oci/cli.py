"""`vmm-oci` (and `vmm oci ...`, `vmm-oci-vm`): the OCI runtime command line, as runc's.

    vmm-oci [--root DIR] [--log FILE] [--log-format text|json] [--systemd-cgroup] [--debug] COMMAND ...

Commands and options are runc's (its man/ pages) for what podman, conmon, containerd and the
runtime-spec's validation suite call. Errors: one line on stderr and in --log in the format
asked, and the exit statuses of errors.py (the README's "vmm-oci exit statuses").
`vmm-oci-vm` is the same runtime with the VM mode as its default (annotation org.pyvmm.runtime).
"""
import argparse
import json
import os
import signal
import sys

from .errors import EXIT_STATUSES, TERMINATING, Terminated, UsageError, VmmError
from .log import Log
from .state import DEFAULT_ROOT, StateRoot


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(message)


class Runtime:
    """What every command gets: the state root, the log, the default mode."""

    def __init__(self, args, default_mode: str):
        self.state = StateRoot(args.root)
        self.log = Log(args.log, args.log_format, args.debug)
        self.default_mode = default_mode
        self.systemd_cgroup = args.systemd_cgroup


COMMANDS = {     # name: one line of help; each command's own options are added by _options()
    "create": "create a container from a bundle; its process waits for `start`",
    "start": "start a created container's process",
    "state": "print a container's state (runtime-spec JSON)",
    "kill": "send a signal (default SIGTERM) to a container's process",
    "delete": "delete a stopped container (--force: any)",
    "run": "create and start a container, wait for it, delete it (or --detach)",
    "exec": "run another process in a running container",
    "pause": "freeze every process of a container",
    "resume": "thaw a paused container",
    "list": "list containers",
    "ps": "list a container's processes",
    "features": "print what this runtime supports (runtime-spec features JSON)",
    "spec": "write a default config.json for a bundle",
}


def _epilog() -> str:
    return ("commands:\n" + "\n".join(f"  {name:<9} {text}" for name, text in COMMANDS.items())
            + "\n\nexit status:\n" + "\n".join(f"  {status:>3}  {meaning}" for status, meaning in EXIT_STATUSES))


def build_parser(prog: str) -> Parser:
    """The global options and the command's name; the command's own parser is built only for the
    command given (argparse builds each sub-parser in milliseconds, and this runs per container
    operation: podman calls create, start and delete for every `podman run`)."""
    parser = Parser(prog=prog, usage=f"{prog} [GLOBAL OPTIONS] COMMAND [OPTIONS] ...",
                    description=f"An OCI runtime: runs containers in namespaces, or in microVMs "
                                f"(annotation org.pyvmm.runtime=vm). `{prog} COMMAND --help` for a command.",
                    epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=DEFAULT_ROOT, help="state directory (default: %(default)s)")
    parser.add_argument("--log", default=None, help="append errors and warnings to this file (default: stderr only)")
    parser.add_argument("--log-format", choices=("text", "json"), default="text", help="log format (default: text)")
    parser.add_argument("--systemd-cgroup", action="store_true",
                        help="cgroupsPath is systemd's slice:prefix:name (refused where systemd is not running)")
    parser.add_argument("--rootless", default="auto", help=argparse.SUPPRESS)      # accepted, as runc's
    parser.add_argument("--debug", action="store_true", help="log debug messages; tracebacks for errors")
    parser.add_argument("--version", "-v", action="store_true", help="print the version (podman info shows it)")
    parser.add_argument("command", nargs="?", choices=tuple(COMMANDS), metavar="COMMAND")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    return parser


def parse(argv: list, prog: str):
    args = build_parser(prog).parse_args(argv)
    if args.command is not None:
        sub = Parser(prog=f"{prog} {args.command}", description=COMMANDS[args.command])
        _options(args.command, sub)
        sub.parse_args(args.arguments, namespace=args)
    return args


def _options(command: str, sub: Parser) -> None:
    if command in ("create", "run"):
        sub.add_argument("--bundle", "-b", default=".", help="bundle directory (default: the current one)")
        sub.add_argument("--pid-file", default=None, help="write the container's process ID to this file")
        sub.add_argument("--console-socket", default=None,
                         help="AF_UNIX socket that receives the terminal's master fd (process.terminal)")
        sub.add_argument("--no-pivot", action="store_true", help="chroot instead of pivot_root (root on a ramdisk)")
        sub.add_argument("--no-new-keyring", action="store_true", help="accepted (no session keyring is made)")
        sub.add_argument("--preserve-fds", type=int, default=0, help="pass N more fds (3..3+N-1) to the process")
        if command == "run":
            sub.add_argument("--detach", "-d", action="store_true", help="do not wait for the container")
            sub.add_argument("--keep", action="store_true", help="do not delete the container after it exits")
    elif command == "kill":
        sub.add_argument("--all", "-a", action="store_true", help="to every process of the container")
    elif command == "delete":
        sub.add_argument("--force", "-f", action="store_true", help="kill it first if it still runs")
    elif command in ("list", "ps"):
        sub.add_argument("--format", "-f", choices=("table", "json"), default="table")
        if command == "list":
            sub.add_argument("--quiet", "-q", action="store_true", help="IDs only")
    elif command == "spec":
        sub.add_argument("--bundle", "-b", default=".", help="bundle directory (default: the current one)")
    elif command == "exec":
        _exec_options(sub)
    if command not in ("list", "features", "spec"):
        sub.add_argument("container_id", metavar="ID")
    if command == "kill":
        sub.add_argument("signal", nargs="?", default="SIGTERM", metavar="SIGNAL")
    if command == "exec":
        sub.add_argument("process_args", nargs=argparse.REMAINDER, metavar="COMMAND")


def _exec_options(sub: Parser) -> None:
    sub.add_argument("--process", "-p", default=None, help="the process as OCI process JSON")
    sub.add_argument("--console-socket", default=None, help="AF_UNIX socket for the terminal's master fd")
    sub.add_argument("--tty", "-t", action="store_true", help="a terminal (needs --console-socket)")
    sub.add_argument("--detach", "-d", action="store_true", help="do not wait for the process")
    sub.add_argument("--pid-file", default=None, help="write the process's ID to this file")
    sub.add_argument("--cwd", default=None, help="working directory in the container")
    sub.add_argument("--env", "-e", action="append", default=[], help="NAME=VALUE (repeatable)")
    sub.add_argument("--user", "-u", default=None, help="UID[:GID]")
    sub.add_argument("--additional-gids", "-g", action="append", type=int, default=[], help="GID (repeatable)")
    sub.add_argument("--cap", action="append", default=[], help="a capability to add (repeatable)")
    sub.add_argument("--no-new-privs", action="store_true", help="set no_new_privs")
    sub.add_argument("--preserve-fds", type=int, default=0, help="pass N more fds (3..3+N-1)")
    sub.add_argument("--ignore-paused", action="store_true", help="allow exec in a paused container")
    sub.add_argument("--process-label", default=None, help=argparse.SUPPRESS)
    sub.add_argument("--apparmor", default=None, help=argparse.SUPPRESS)
    sub.add_argument("--cgroup", action="append", default=[], help=argparse.SUPPRESS)


def dispatch(runtime, args) -> int:
    from . import lifecycle
    if args.command in ("create", "run"):
        _check_systemd(runtime)
        if args.preserve_fds < 0:
            raise UsageError("--preserve-fds must be 0 or more")
        from .modes import create_any
        if args.command == "create":
            create_any(runtime, args)
            return 0
        from .run import run
        return run(runtime, args)
    if args.command == "start":
        from .modes import start_any
        start_any(runtime, args.container_id)
    elif args.command == "state":
        print(json.dumps(lifecycle.state(runtime, args.container_id), indent=2))
    elif args.command == "kill":
        lifecycle.kill(runtime, args.container_id, args.signal, args.all)
    elif args.command == "delete":
        lifecycle.delete(runtime, args.container_id, args.force)
    elif args.command in ("pause", "resume"):
        lifecycle.pause(runtime, args.container_id, args.command == "pause")
    elif args.command == "list":
        _print_list(lifecycle.listing(runtime), args)
    elif args.command == "ps":
        _print_ps(lifecycle.processes(runtime, args.container_id), args.format)
    elif args.command == "features":
        from .features import features
        print(json.dumps(features(), indent=2))
    elif args.command == "spec":
        from .features import write_default_spec
        write_default_spec(args.bundle)
    elif args.command == "exec":
        from .execute import execute
        return execute(runtime, args)
    return 0


def _check_systemd(runtime) -> None:
    if runtime.systemd_cgroup and not os.path.isdir("/run/systemd/system"):
        raise UsageError("--systemd-cgroup asks for systemd's cgroup manager, but systemd is not running here "
                         "(no /run/systemd/system); drop the flag (podman: --cgroup-manager cgroupfs)")


def _print_list(rows: list, args) -> None:
    if args.quiet:
        for row in rows:
            print(row["id"])
    elif args.format == "json":
        print(json.dumps(rows))
    else:
        table = [("ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER")] + [
            (r["id"], str(r["pid"]), r["status"], r["bundle"], r["created"], r["owner"]) for r in rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        for row in table:
            print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "   " + row[5])


def _print_ps(pids: list, fmt: str) -> None:
    if fmt == "json":
        print(json.dumps(pids))
        return
    print("PID     CMD")
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as file:
                command = file.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            command = "?"
        print(f"{pid:<7} {command}")


def version_text(prog: str) -> str:
    """As runc prints it: the runtime's version, then the runtime-spec version it implements."""
    import platform
    from ..paths import package_version
    from .state import OCI_VERSION
    return f"{prog} version {package_version()}\nspec: {OCI_VERSION}\npython: {platform.python_version()}"


def _terminated(signum, frame):
    raise Terminated(signum)


def main(argv=None, prog="vmm-oci", default_mode="namespaces") -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = "--debug" in argv
    log = Log()
    for signum in TERMINATING:          # an exception, so that a half-made container is undone
        signal.signal(signum, _terminated)
    try:
        args = parse(argv, prog)
        runtime = Runtime(args, default_mode)
        log = runtime.log
        if args.version:
            print(version_text(prog))
            return 0
        if args.command is None:
            build_parser(prog).print_help()
            return UsageError.exit_status
        return dispatch(runtime, args)
    except VmmError as error:
        if debug:
            raise
        log.error(str(error))
        return error.exit_status
    except KeyboardInterrupt:
        log.error("interrupted by SIGINT; what was half-made was undone")
        return 130
    except Exception as error:                  # a bug: still one line unless --debug
        if debug:
            raise
        log.error(f"internal error: {type(error).__name__}: {error} (run with --debug for details)")
        return VmmError.exit_status


def main_vm(argv=None) -> int:
    return main(argv, prog="vmm-oci-vm", default_mode="vm")
