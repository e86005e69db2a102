"""Where the guest's serial output goes: always into a bounded capture buffer (for the API
result and tests), and also to stdout, a file, or nowhere (--serial)."""
import os
import sys
import time

from .errors import InputError

CAPTURE_LIMIT = 16 * 1024 * 1024        # bytes kept for RunResult.serial; beyond it, only counted
_SINGLE_BYTES = [bytes([value]) for value in range(256)]   # no allocation per output byte


class SerialSink:
    def __init__(self, spec: str):
        self.captured = bytearray()
        self.total_bytes = 0
        self.first_byte_time = None
        self._fd = None
        self._owns_fd = False
        if spec == "stdio":
            self._fd = sys.stdout.fileno()
        elif spec.startswith("file:"):
            path = spec[len("file:"):]
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            except OSError as error:
                raise InputError(f"cannot open serial output file {path}: {error.strerror}") from None
            self._owns_fd = True

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
            except OSError:
                self._fd = None             # a closed pipe must not crash the VM: stop echoing

    def write(self, data: bytes) -> None:
        """Several bytes at once (the virtio console shares this output with the UART)."""
        for value in data:
            self.put(value)

    def close(self) -> None:
        if self._owns_fd and self._fd is not None:
            os.close(self._fd)
        self._fd = None
