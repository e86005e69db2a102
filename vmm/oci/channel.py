"""The runtime <-> container-process channel: one SOCK_SEQPACKET socket pair, one JSON object per packet.

Messages (each {"type": ..., ...}):
  runtime -> process  go {pid}        the process is in its cgroup; pid is its pid as the runtime sees it
                      continue        the runtime's prestart and createRuntime hooks ran
  process -> runtime  hooks           namespaces and mounts are ready: run the runtime-side hooks now
                      child {pid}     (exec) the process forked inside the container's PID namespace
                      ready           set-up done: the process waits for `start` (or execs, for exec)
                      error {kind, message}   set-up failed; the process exits
End of file (every holder of the process end closed it, or died) without "ready" means the
process died during set-up. The process end is close-on-exec, so a successful exec closes it.
"""
import json
import socket

from ..container.cgroup_limits import LimitError
from ..container.seccomp import SeccompError
from . import errors

MAX_MESSAGE = 1 << 16
# Error classes a process may report by name; anything else arrives as SetupFailed.
_KINDS = {cls.__name__: cls for cls in (errors.ConfigError, errors.ContainerUnavailable, errors.InputError,
                                         errors.SetupFailed, errors.UsageError, errors.VmmError)}


def pair() -> tuple[socket.socket, socket.socket]:
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def send(end: socket.socket, message_type: str, **fields) -> None:
    """Send a message; if the other side has already gone, raise what it reported before it went."""
    try:
        end.send(json.dumps(dict(fields, type=message_type)).encode())
    except (BrokenPipeError, ConnectionResetError):
        try:
            message = receive(end)
        except OSError:
            message = None
        if message and message.get("type") == "error":
            raise as_error(message) from None
        raise errors.SetupFailed("the container's process died during its set-up") from None


def receive(end: socket.socket) -> dict | None:
    """The next message, or None at end of file."""
    data = end.recv(MAX_MESSAGE)
    if not data:
        return None
    return json.loads(data)


def send_error(end: socket.socket, error: BaseException) -> None:
    if isinstance(error, (SeccompError, LimitError)):
        kind, message = "ConfigError", str(error)
    elif isinstance(error, errors.VmmError):
        kind, message = type(error).__name__, str(error)
    elif isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        kind, message = "SetupFailed", f"container set-up failed: {error.strerror or error}{where}"
    else:
        kind, message = "VmmError", f"container set-up failed: {type(error).__name__}: {error}"
    try:
        send(end, "error", kind=kind, message=message)
    except OSError:
        pass


def as_error(message: dict) -> errors.VmmError:
    cls = _KINDS.get(message.get("kind"), errors.SetupFailed)
    return cls(message.get("message", "container set-up failed"))


def expect(end: socket.socket, *kinds: str) -> dict:
    """The next message, which must be one of `kinds`; a reported error is raised, EOF too."""
    message = receive(end)
    if message is None:
        raise errors.SetupFailed("the container's process died during its set-up")
    if message["type"] == "error":
        raise as_error(message)
    if message["type"] not in kinds:
        raise errors.VmmError(f"unexpected message {message['type']!r} from the container's process")
    return message
