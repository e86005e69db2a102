"""`run`: create, start, wait for the container's process, delete it (runc run).

Without --detach this command stays the init's parent: it forwards SIGINT, SIGTERM, SIGHUP and
SIGQUIT to the init, exits with the process's status (128+N for a signal N) and deletes the
container afterwards (unless --keep). With process.terminal and no --console-socket it holds
the terminal itself: a private console socket receives the master end, and the bytes are copied
between it and this command's stdin/stdout, this terminal in raw mode while the container runs
(restored on every path); the end of a piped stdin reaches the container as Ctrl-D.
"""
import os
import select
import signal
import socket
import tempfile

from ..container import pty
from ..host import process as host_process
from . import lifecycle
from .errors import SetupFailed
from .modes import create_any

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
EOT = b"\x04"


def run(runtime, args) -> int:
    own_console = None
    if not args.detach and not args.console_socket:
        from .spec import load
        if (load(args.bundle).process or {}).get("terminal"):
            own_console = _OwnConsole()
            args.console_socket = own_console.path
    if not args.detach:         # with a user namespace the init is a grandchild: it must come back here
        host_process.prctl(host_process.PR_SET_CHILD_SUBREAPER, 1)
    try:
        created = create_any(runtime, args, detached=args.detach)
        master = own_console.accept() if own_console else None
        try:
            lifecycle.start(runtime, args.container_id)
        except BaseException:
            lifecycle.delete(runtime, args.container_id, force=True)
            raise
        if args.detach:
            return 0
        try:
            status = _wait(created.pid, master)
        finally:
            if not args.keep:
                lifecycle.delete(runtime, args.container_id, force=True)
        return status
    finally:
        if own_console:
            own_console.close()


def _wait(pid: int, master) -> int:
    return wait_forwarding(pid, (lambda: _copy_terminal(master)) if master is not None else None)


def wait_forwarding(pid: int, while_waiting=None) -> int:
    """Wait for child `pid`, forwarding SIGINT, SIGTERM, SIGHUP and SIGQUIT to it (after running
    while_waiting(), if given); its exit status, 128+N for a signal N."""
    def forward(signum, frame):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass
    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED}
    try:
        if while_waiting is not None:
            while_waiting()
        _, status = os.waitpid(pid, 0)          # retried by Python across the forwarded signals
    except ChildProcessError:
        raise SetupFailed(f"process {pid} is not a child of this runtime") from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _copy_terminal(master: int) -> None:
    """Copy stdin -> master and master -> stdout until the container's side closes."""
    import termios
    import tty
    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
    try:
        sources = [master, 0]
        while master in sources:
            ready, _, _ = select.select(sources, [], [])
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:             # EIO: the slave side closed (the process ended)
                    data = b""
                if fd == master:
                    if not data:
                        sources.remove(master)
                    else:
                        os.write(1, data)
                elif data:
                    os.write(master, data)
                else:
                    sources.remove(0)       # end of our input: the container keeps running, and
                    if saved is None:       # from a pipe or file it reads end of file, as a
                        os.write(master, EOT)   # terminal user gives it with Ctrl-D
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSAFLUSH, saved)
        os.close(master)


class _OwnConsole:
    """A console socket in a private temporary directory, for `run` in the foreground."""

    def __init__(self):
        self.directory = tempfile.mkdtemp(prefix="vmm-oci-console-")
        self.path = os.path.join(self.directory, "console.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)

    def accept(self) -> int:
        return pty.receive_master(self.listener)

    def close(self) -> None:
        self.listener.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.rmdir(self.directory)
