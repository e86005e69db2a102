"""The command's standard input, output and error, as a careless caller may leave them.

- Closed descriptors (`vmm run <&- >&-`): plug() puts /dev/null on each of 0, 1 and 2 that is
  closed, so that no file opened later (a disk image, /dev/kvm) takes its number and gets the
  console's bytes, and records them in `closed`; the CLI refuses a command that needs one.
- Output that cannot be written (`>/dev/full`, a closed pipe): checked_stdout() turns a
  failed write or flush of sys.stdout into OutputError (74), and afterwards points the
  descriptor at /dev/null so that Python's own flush at exit does not fail a second time.
"""
import os
import sys
from contextlib import contextmanager

from .errors import OutputError

closed = set()          # which of 0, 1, 2 were closed when plug() ran


def plug() -> None:
    closed.clear()
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.add(fd)
    for fd in sorted(closed):           # open() takes the lowest free number: each lands in place
        null = os.open(os.devnull, os.O_RDWR)
        if null != fd:
            os.dup2(null, fd)
            os.close(null)
    # Python sets sys.stdin/stdout/stderr to None for descriptors closed at start-up.
    if sys.stdin is None:
        sys.stdin = open(0, "r", closefd=False)
    if sys.stdout is None:
        sys.stdout = open(1, "w", closefd=False)
    if sys.stderr is None:
        sys.stderr = open(2, "w", closefd=False)


class _CheckedStdout:
    """sys.stdout, whose write and flush errors are OutputError."""

    def __init__(self, stream):
        self._stream = stream

    def write(self, text):
        return self._checked(self._stream.write, text)

    def flush(self):
        return self._checked(self._stream.flush)

    def _checked(self, call, *args):
        try:
            return call(*args)
        except OSError as error:
            _discard_stdout()
            raise OutputError(f"cannot write to standard output: {error.strerror}") from None

    def __getattr__(self, name):
        return getattr(self._stream, name)


def _discard_stdout() -> None:
    """From now on fd 1 is /dev/null: what is still buffered goes nowhere, without an error."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 1)
        os.close(null)
    except OSError:
        pass


@contextmanager
def checked_stdout():
    original = sys.stdout
    sys.stdout = _CheckedStdout(original)
    try:
        yield
    finally:
        sys.stdout = original


def flush() -> None:
    sys.stdout.flush()
