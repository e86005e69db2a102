"""Kicking a vCPU out of KVM_RUN from another thread.

KVM_RUN returns EINTR when a signal is pending for the thread that runs it, or at once when
kvm_run.immediate_exit is set. A kick does both, in that order: the flag covers a kick that
arrives while the thread is outside KVM_RUN (between exits), the signal one that arrives
while it is inside (a guest spinning in ring 3 may never exit by itself).

The signal is SIGRTMIN (Firecracker kicks vCPUs with a real-time signal too). Its default
action would kill the process, so a kick is only sent once a handler is installed. Python
lets only the main thread install signal handlers: install_kick_handler() must run there
once. KvmEngine acquires the handler when it is created (installing it if it is in the
main thread) and releases it on close(); the last release in the main thread restores the
previous disposition, unless install_kick_handler() pinned the handler. The handler does
nothing; its only job is to make the signal interrupt the system call instead of killing us.
"""
import _thread
import signal
import threading
import time

KICK_SIGNAL = signal.SIGRTMIN

_lock = threading.Lock()
_installed = False          # our handler is in place (and _previous is what it replaced)
_previous = None
_users = 0                  # engines relying on the handler
_pinned = False             # installed on request (install_kick_handler): never restored


def _on_kick(signum, frame):
    pass                # the interruption of KVM_RUN is the point; nothing to do here


def install_kick_handler() -> None:
    """Install the no-op kick handler for good (main thread only; idempotent). Call it at
    start-up when engines will be created in other threads."""
    global _pinned
    _install()
    _pinned = True


def _install() -> None:
    global _installed, _previous
    with _lock:
        if _installed:
            return
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("the vCPU kick signal handler can only be installed from the main thread")
        _previous = signal.signal(KICK_SIGNAL, _on_kick)
        _installed = True


def kick_handler_installed() -> bool:
    """True if a Python handler makes the kick signal safe to send (ours or someone's)."""
    return _installed or callable(signal.getsignal(KICK_SIGNAL))


def acquire_kick_handler() -> None:
    """For each vCPU user: install the handler if this is the main thread, else make sure
    one is there. Raises RuntimeError when neither is possible."""
    global _users
    if threading.current_thread() is threading.main_thread():
        _install()
    elif not kick_handler_installed():
        raise RuntimeError("the vCPU kick signal handler is not installed and only the main thread can "
                           "install it: call vmm.kvm.install_kick_handler() from the main thread first")
    with _lock:
        _users += 1


def release_kick_handler() -> None:
    """The last user gone, restore the disposition we replaced (only possible, and only
    done, from the main thread; otherwise the harmless handler stays)."""
    global _users, _installed
    with _lock:
        _users = max(0, _users - 1)
        if _users or _pinned or not _installed or threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(KICK_SIGNAL) is _on_kick:      # nobody replaced ours meanwhile
            signal.signal(KICK_SIGNAL, _previous if _previous is not None else signal.SIG_DFL)
        _installed = False


def send_kick(thread_id: int) -> None:
    signal.pthread_kill(thread_id, KICK_SIGNAL)


class Watchdog:
    """One helper thread that calls `kick()` when an armed deadline (time.monotonic())
    passes. Arming and disarming cost a lock and a notify: no thread per run.

    With `poll`, it also calls `poll()` while armed (under its lock, so keep it short) and
    kicks when the answer is true: KvmEngine looks for a vCPU halted with interrupts off this
    way. `poll_intervals` (first, longest): the first poll comes `first` seconds after arm(),
    and each interval is twice the one before, up to `longest`; so a short run is watched
    closely, and a long one costs few wake-ups."""

    def __init__(self, kick, name: str = "vcpu-watchdog", poll=None, poll_intervals=(0.01, 0.1)):
        self._kick = kick
        self._name = name
        self._poll = poll
        self._first_interval, self._longest_interval = poll_intervals
        self._poll_interval = self._first_interval
        self._cond = threading.Condition(threading.Lock())
        self._armed = False
        self._deadline = None
        self._next_poll = 0.0
        self._closed = False
        self._started = False
        self._ident = None
        self._done = threading.Event()

    def arm(self, deadline: float | None) -> None:
        """Kick at `deadline`, and poll until then (None: no deadline; polls only)."""
        with self._cond:
            if not self._started:
                self._started = True
                # Started with every signal blocked (a thread inherits its creator's mask), so
                # that SIGINT is never delivered to this thread, which cannot act on it; and
                # with _thread, which does not wait for it to run (threading's start() does:
                # a millisecond on a busy host, on the path of a run's start).
                previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
                try:
                    _thread.start_new_thread(self._run, ())
                finally:
                    signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            self._armed = True
            self._deadline = deadline
            self._poll_interval = self._first_interval
            self._next_poll = time.monotonic() + self._poll_interval
            self._cond.notify()

    def disarm(self) -> None:
        with self._cond:
            self._armed = False
            self._deadline = None

    def _run(self) -> None:
        self._ident = threading.get_ident()
        try:
            self._main()
        finally:
            self._done.set()

    def _main(self) -> None:
        with self._cond:
            while not self._closed:
                if not self._armed or (self._deadline is None and self._poll is None):
                    self._cond.wait()
                    continue
                now = time.monotonic()
                deadline = self._deadline
                if deadline is not None and now >= deadline:
                    self._deadline = None
                    self._kick()
                    continue
                if self._poll is not None:
                    if now >= self._next_poll:
                        self._poll_interval = min(2 * self._poll_interval, self._longest_interval)
                        self._next_poll = now + self._poll_interval
                        if self._poll():
                            self._kick()
                        continue
                    wake = self._next_poll if deadline is None else min(deadline, self._next_poll)
                else:
                    wake = deadline
                self._cond.wait(wake - now)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._armed = False
            self._deadline = None
            self._cond.notify()
            started = self._started
        if started and self._ident != threading.get_ident():
            self._done.wait()
