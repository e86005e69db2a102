"""Where the guest's serial output goes: always into a bounded capture buffer (for the API
result and tests), and also to stdout, a file, or nowhere (--serial)."""
import os
import sys
import time

from .user_files import open_output

CAPTURE_LIMIT = 16 * 1024 * 1024        # bytes kept for RunResult.serial; beyond it, only counted
_SINGLE_BYTES = [bytes([value]) for value in range(256)]   # no allocation per output byte


class SerialSink:
    """`on_error(text)` is called once if the output cannot be written (a full disk, a reader
    that went away): the machine then ends the run, so that output is never lost silently."""

    def __init__(self, spec: str, on_error=None):
        self.captured = bytearray()
        self.total_bytes = 0
        self.first_byte_time = None
        self._fd = None
        self._owned_fd = None               # closed by close(), even after a write error
        self._on_error = on_error
        self.error = None
        if spec == "stdio":
            self._fd = sys.stdout.fileno()
        elif spec.startswith("file:"):
            self._fd = self._owned_fd = open_output(spec[len("file:"):], "serial output file")

    def put(self, value: int) -> None:
        """One byte from the UART's transmitter."""
        if self.first_byte_time is None:
            self.first_byte_time = time.monotonic()
        self.total_bytes += 1
        if len(self.captured) < CAPTURE_LIMIT:
            self.captured.append(value)
        if self._fd is not None:
            try:
                os.write(self._fd, _SINGLE_BYTES[value])
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        """Stop echoing (a dead output must not crash the VM) and say so once."""
        self._fd = None
        self.error = f"cannot write the guest's serial output: {error.strerror}"
        if self._on_error is not None:
            self._on_error(self.error)

    def write(self, data: bytes) -> None:
        """Several bytes at once (the virtio console shares this output with the UART)."""
        for value in data:
            self.put(value)

    def close(self) -> None:
        self._fd = None
        fd, self._owned_fd = self._owned_fd, None
        if fd is not None:
            os.close(fd)
