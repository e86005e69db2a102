"""The control socket: a Unix stream socket at PATH, mode 0600, serving the protocol of
commands.py to any number of clients, one thread each.

- The socket is made in a private directory beside PATH (mode 0700), given mode 0600 and
  renamed into place, so it is never reachable with looser permissions. A stale socket left
  at PATH by a VMM that died is replaced; a live one (something accepts on it), or any other
  kind of file, is refused.
- Requests are lines of JSON. Only a complete line is acted on: a client that disconnects in
  the middle of one changes nothing. A line longer than MAX_LINE gets an error and the
  connection is closed. Malformed JSON gets {"error": ...}; the server and the VM go on.
- close() stops accepting, closes every connection, waits for the client threads and removes
  the socket file (if it is still ours).
"""
import json
import os
import socket
import stat
import threading

from ..errors import InputError
from .commands import Commands

MAX_LINE = 64 * 1024
BACKLOG = 8


class ControlServer:
    def __init__(self, path: str, machine, default_snapshot_path=None):
        """`default_snapshot_path()`: where a `snapshot` request without a path goes."""
        self.path = os.path.abspath(path)
        self.commands = Commands(machine, default_snapshot_path)
        self._lock = threading.Lock()
        self._connections = set()
        self._threads = []
        self._closed = False
        self._listener = _bind(self.path)
        self._inode = os.stat(self.path).st_ino
        self._acceptor = threading.Thread(target=self._accept, name="control-accept", daemon=True)
        self._acceptor.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return                          # closed
            with self._lock:
                if self._closed:
                    connection.close()
                    return
                self._connections.add(connection)
                thread = threading.Thread(target=self._serve, args=(connection,), name="control-client", daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, connection) -> None:
        buffer = b""
        try:
            while True:
                data = connection.recv(4096)
                if not data:
                    return                      # the client left; a partial line is dropped
                buffer += data
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        reply, after = self._reply(line)
                        try:
                            connection.sendall(reply)
                        finally:                # a whole request is done, read or not
                            if after is not None:
                                after()
                if len(buffer) > MAX_LINE:
                    connection.sendall(_encode({"error": f"request longer than {MAX_LINE} bytes"}))
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._connections.discard(connection)
            connection.close()

    def _reply(self, line: bytes) -> tuple:
        try:
            request = json.loads(line)
        except (ValueError, RecursionError):
            return _encode({"error": "malformed request: not a JSON object on one line"}), None
        reply, after = self.commands.handle(request)
        return _encode(reply), after

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            connections = list(self._connections)
        try:
            self._listener.shutdown(socket.SHUT_RDWR)   # wakes accept()
        except OSError:
            pass
        self._listener.close()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._acceptor.join(5)
        for thread in list(self._threads):
            thread.join(5)
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _encode(reply: dict) -> bytes:
    return json.dumps(reply, separators=(", ", ": ")).encode() + b"\n"


def _bind(path: str):
    _clear_stale(path)
    parent = os.path.dirname(path)
    try:
        private = _private_directory(parent)
    except OSError as error:
        raise InputError(f"cannot create the control socket in {parent}: {error.strerror}") from None
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    staged = os.path.join(private, "control")
    try:
        listener.bind(staged)
        os.chmod(staged, 0o600)
        listener.listen(BACKLOG)
        os.rename(staged, path)
    except OSError as error:
        listener.close()
        raise InputError(f"cannot create the control socket {path}: {error.strerror}") from None
    finally:
        try:
            if os.path.lexists(staged):
                os.unlink(staged)
            os.rmdir(private)
        except OSError:
            pass
    return listener


def _private_directory(parent: str) -> str:
    import tempfile
    return tempfile.mkdtemp(prefix=".vmm-control-", dir=parent or ".")


def _clear_stale(path: str) -> None:
    """Refuse PATH if it is not a socket or if something listens on it; remove a dead one."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise InputError(f"control socket path {path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)                         # nobody listens: left by a VMM that died
        return
    finally:
        probe.close()
    raise InputError(f"control socket {path} is in use by another process")
