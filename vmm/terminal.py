"""The host terminal as the guest's console: stdin to the guest's serial port, in raw mode
and always restored.

- On a terminal, input is raw (no line editing, no echo, Ctrl-C goes to the guest) while
  output processing stays on, so the guest's "\\n" still starts a new line.
- Ctrl-A x ends the VM; Ctrl-A Ctrl-A sends one Ctrl-A (the QEMU and screen convention);
  Ctrl-A s saves a snapshot (with --snapshot-file) and goes on.
- The terminal mode is restored on every path: guest exit, VMM error, SIGINT, and every
  terminating signal (SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGALRM...: vmm/signals.py), each of
  which stops the VM first; `vmm run` then exits with 128 + the signal's number.
- From a pipe or a file, input is passed through unchanged, and end of input reaches the
  guest as Ctrl-D (EOT), which the tiny kernel's read() reports as end of file, as a tty does.
"""
import os
import signal
import termios
import threading
from contextlib import ExitStack

from . import signals

ESCAPE = 0x01           # Ctrl-A
QUIT = ord("x")
SNAPSHOT = ord("s")     # Ctrl-A s: save a snapshot and go on
EOT = b"\x04"           # Ctrl-D: end of input, as a terminal sends it
INTERRUPTED_STATUS = 130   # what a shell reports for Ctrl-C; also the status of Ctrl-A x


class Terminal:
    """`with Terminal(fd, feed, quit):` pumps `fd` into `feed(bytes)`; `quit(reason, status)`
    is called for the escape sequence, a terminal hang-up, or a terminating signal; `on_snapshot()`,
    if given, for Ctrl-A s (on the input thread, which waits for it)."""

    def __init__(self, fd: int, feed, quit, on_snapshot=None):
        self.fd = fd
        self._feed = feed
        self._quit = quit
        self._on_snapshot = on_snapshot
        self.is_terminal = os.isatty(fd)
        self._saved_mode = None
        self._handlers = ExitStack()
        self._escape_pending = False

    # --- terminal mode -------------------------------------------------------------------
    def __enter__(self):
        # Handlers first: a signal that comes while the mode changes still finds the restore.
        self._handlers.enter_context(signals.handled(self._on_signal))
        try:
            if self.is_terminal:
                saved = termios.tcgetattr(self.fd)
                self._saved_mode = saved
                termios.tcsetattr(self.fd, termios.TCSAFLUSH, raw_input_mode(saved))
            threading.Thread(target=self._pump, name="console-input", daemon=True).start()
        except BaseException:
            self.restore()
            raise
        return self

    def __exit__(self, *exc):
        self.restore()

    def restore(self) -> None:
        """Put the terminal and the signal handlers back; safe to call twice."""
        if self._saved_mode is not None:
            try:
                termios.tcsetattr(self.fd, termios.TCSAFLUSH, self._saved_mode)
            except termios.error:
                pass                    # the terminal went away (hang-up): nothing to restore
            self._saved_mode = None
        self._handlers.close()

    def _on_signal(self, signum: int) -> None:
        self._quit(f"ended by {signals.signal_name(signum)}", 128 + signum)

    # --- input -----------------------------------------------------------------------------
    def _pump(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 4096)
            except OSError:
                data = b""
            if not data:
                if self.is_terminal:
                    self._quit("the terminal hung up", 128 + signal.SIGHUP)
                else:
                    self._feed(EOT)
                return
            if self.is_terminal:
                data = self._filter_escapes(data)
                if data is None:
                    return
            if data:
                self._feed(data)

    def _filter_escapes(self, data: bytes):
        """The bytes for the guest, or None once Ctrl-A x asked to end the VM."""
        out = bytearray()
        for value in data:
            if self._escape_pending:
                self._escape_pending = False
                if value == QUIT:
                    self._quit("ended from the console (Ctrl-A x)", INTERRUPTED_STATUS)
                    return None
                if value == ESCAPE:
                    out.append(ESCAPE)
                elif value == SNAPSHOT and self._on_snapshot is not None:
                    if out:                     # what came before reaches the guest first
                        self._feed(bytes(out))
                        out.clear()
                    self._on_snapshot()
                # any other key after Ctrl-A is dropped, as in QEMU
            elif value == ESCAPE:
                self._escape_pending = True
            else:
                out.append(value)
        return bytes(out)


def raw_input_mode(mode):
    """termios attributes for raw input with output processing kept (cfmakeraw minus OPOST)."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, cc = mode
    # ICRNL stays on: Enter sends "\n", the line ending the tiny kernel's read() waits for
    # (a Linux guest's own tty layer would translate "\r" itself).
    iflag &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP
               | termios.INLCR | termios.IGNCR | termios.IXON)
    lflag &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    cflag = (cflag & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    cc = list(cc)
    cc[termios.VMIN], cc[termios.VTIME] = 1, 0
    return [iflag, oflag, cflag, lflag, ispeed, ospeed, cc]
