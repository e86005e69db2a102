"""The control protocol's requests, QMP-like: one JSON object per line in, one per line out.

    {"cmd": "pause"}                     -> {"ok": true, "state": "paused"}
    {"cmd": "resume"}                    -> {"ok": true, "state": "running"}
    {"cmd": "snapshot", "path": P}       -> {"ok": true, "path", "diff", "memory_bytes", "seconds"}
         ("path" defaults to --snapshot-file; "full": true forces a full one under --snapshot-dirty)
    {"cmd": "stats"}                     -> {"ok": true, "state", "engine", "exits", "serial_bytes",
                                             "uptime_seconds"}
    {"cmd": "quit"}                      -> {"ok": true}; the VM stops, `vmm run` exits with 0
A request that cannot be done gets {"error": "one line"} and changes nothing.
"""
import time

from ..errors import VmmError

QUIT_DETAIL = "quit from the control socket"


class BadRequest(Exception):
    """A request that is not one: the reply is its message."""


class Commands:
    def __init__(self, machine, default_path=None):
        """`default_path()`: where a `snapshot` without a path goes (None: nowhere)."""
        self.machine = machine
        self.default_path = default_path or (lambda: None)
        self._table = {"pause": self.pause, "resume": self.resume, "snapshot": self.snapshot,
                       "stats": self.stats, "quit": self.quit}

    def handle(self, request) -> tuple:
        """(the reply to one decoded request, what to do once it is sent, or None); never raises."""
        if not isinstance(request, dict):
            return {"error": "a request is a JSON object, like {\"cmd\": \"stats\"}"}, None
        command = self._table.get(request.get("cmd"))
        if command is None:
            return {"error": f"unknown command {request.get('cmd')!r}: use one of {', '.join(self._table)}"}, None
        try:
            reply = command(request)
        except BadRequest as error:
            return {"error": str(error)}, None
        except VmmError as error:
            return {"error": str(error)}, None
        except Exception as error:                  # a bug: the VM and the server go on
            return {"error": f"internal error: {type(error).__name__}: {error}"}, None
        after = reply.pop("after", None)
        return {"ok": True, **reply}, after

    def pause(self, request) -> dict:
        self.machine.pause()
        return {"state": self._state()}

    def resume(self, request) -> dict:
        self.machine.resume()
        return {"state": self._state()}

    def snapshot(self, request) -> dict:
        path = request["path"] if "path" in request else self.default_path()
        if not isinstance(path, str) or not path:
            raise BadRequest("snapshot needs a \"path\" (no --snapshot-file was given)")
        full = request.get("full", False)
        if not isinstance(full, bool):
            raise BadRequest("\"full\" is true or false")
        saved = self.machine.snapshot(path, full=full)
        return {"path": saved.path, "diff": saved.diff, "memory_bytes": saved.memory_bytes,
                "seconds": round(saved.seconds, 6)}

    def stats(self, request) -> dict:
        machine = self.machine
        return {"state": self._state(), "engine": machine.engine.name, "exits": machine.engine.exit_counts(),
                "serial_bytes": machine.serial.total_bytes,
                "uptime_seconds": round(time.monotonic() - machine.created, 3)}

    def quit(self, request) -> dict:
        """The VM stops once the reply is out (its end closes this socket)."""
        return {"after": lambda: self.machine.stop(QUIT_DETAIL, status=0)}

    def _state(self) -> str:
        gate = self.machine.gate
        if gate.ended is not None:
            return "ended"
        return "paused" if gate.paused else "running"
