"""The signals that end the VMM, handled alike by every command and the container launcher.

Every catchable signal whose default action ends the process is handled the way SIGTERM is:
the VM or container is stopped, everything is cleaned up (terminal mode, cgroups, temporary
folders, child processes), and the process exits with 128 + the signal's number, as a shell
reports a death by that signal. Not handled here:
  - SIGINT: Python raises KeyboardInterrupt, which ends a command the same way (130);
  - SIGPIPE and SIGXFSZ: Python ignores them, so writes fail with EPIPE and EFBIG instead
    (an output error, 74);
  - SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT: they report a fault of the
    process's own code, after which nothing can be cleaned up safely;
  - SIGKILL and SIGSTOP, which cannot be caught: a run killed so leaves its cgroup and
    temporary folders, which the next run sweeps (vmm/scratch.py, container/cgroups.py).

    with signals.handled():             # a terminating signal raises Terminated(signum)
        ...
    with signals.handled(on_signal):    # or calls on_signal(signum) (vmm run stops its VM)

Only the first signal acts: later ones (a second Ctrl-\\, a SIGTERM during cleanup) are
ignored, so that cleanup is never interrupted half-way.
"""
import signal
import threading
from contextlib import contextmanager

from .errors import VmmError

_NAMES = ("SIGHUP", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF", "SIGXCPU",
          "SIGIO", "SIGPWR", "SIGSTKFLT")
# Real-time signals end a process too; SIGRTMIN itself is the vCPU kick (vmm/kvm/kick.py),
# whose handler must stay as it is (tests/test_reliability.py checks the two agree).
TERMINATING = tuple(getattr(signal, name) for name in _NAMES if hasattr(signal, name)) + tuple(
    range(signal.SIGRTMIN + 1, signal.SIGRTMAX + 1))


def signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"SIGRTMIN+{signum - signal.SIGRTMIN}" if signal.SIGRTMIN <= signum <= signal.SIGRTMAX \
            else f"signal {signum}"


class Terminated(VmmError):
    """A terminating signal ended the command; its exit status is 128 + the signal's number."""

    def __init__(self, signum: int, message: str | None = None):
        super().__init__(message or f"terminated by {signal_name(signum)}")
        self.signum = signum
        self.exit_status = 128 + signum


_fired = []                     # the signal that acted, shared by nested blocks (main thread only)
_depth = []                     # the handled() blocks open now


def first_signal():
    """The terminating signal that already acted in the current handled() blocks, or None."""
    return _fired[0] if _fired else None


def _raise(signum: int) -> None:
    raise Terminated(signum)


@contextmanager
def handled(on_signal=_raise):
    """Inside the block, the first terminating signal calls on_signal(signum) (default: raise
    Terminated) and later ones are ignored. In a thread other than the main one (where Python
    runs handlers) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if not _fired:
            _fired.append(signum)
            on_signal(signum)
    previous = {}
    _depth.append(on_signal)
    try:
        for signum in TERMINATING:
            previous[signum] = signal.signal(signum, handler)
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
        _depth.pop()
        if not _depth:
            _fired.clear()              # the outermost block is over: the next one starts afresh


@contextmanager
def blocked():
    """SIGINT and every terminating signal wait until the block ends (cleanup that must not be
    interrupted); then a pending one is delivered as usual."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, *TERMINATING})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
