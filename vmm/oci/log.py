"""The runtime's log: errors and warnings as runc writes them, to --log in --log-format.

runc logs through logrus: text lines `time="2006-01-02T15:04:05Z" level=error msg="..."` or JSON
objects `{"level":"error","msg":"...","time":"..."}`, one per line, appended to the --log file
(default: stderr). Container engines read that file to show the runtime's errors; the same
message also goes to stderr as one line (conmon forwards stderr to podman when `create` fails).
"""
import json
import os
import sys
import time

PROGRAM = "vmm-oci"


class Log:
    def __init__(self, path=None, fmt="text", debug=False):
        self.path, self.format, self.debug_enabled = path, fmt, debug

    def _line(self, level: str, message: str) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        if self.format == "json":
            return json.dumps({"level": level, "msg": message, "time": stamp})
        escaped = message.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'time="{stamp}" level={level} msg="{escaped}"'

    def _append(self, level: str, message: str) -> None:
        if not self.path:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return                      # a log we cannot open must not hide the error itself
        try:
            os.write(fd, (self._line(level, message) + "\n").encode())
        finally:
            os.close(fd)

    def error(self, message: str) -> None:
        self._append("error", message)
        _stderr(f"{PROGRAM}: error: {message}")

    def warning(self, message: str) -> None:
        self._append("warning", message)
        _stderr(f"{PROGRAM}: warning: {message}")

    def debug(self, message: str) -> None:
        if self.debug_enabled:
            self._append("debug", message)


def _stderr(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):       # stderr closed (a detached caller)
        pass
