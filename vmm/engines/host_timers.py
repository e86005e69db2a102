"""Host-time helpers of the software engine's run loop: the watchdog that throws the stop
switch at a deadline, and the wake-up a halted vCPU sleeps on.

The watchdog calls `fire` (StopSwitch.arm) at the time given to fire_at(), unless cancel()
comes first. The run loop arms it before every emu_start, for the earliest of the run's
timeout, the next timer deadline and a TICK that lets the main thread handle signals, and
cancels it after. Where the C library has timerfd (Linux) it is a timerfd and a thread
blocked reading it: arming and cancelling are one system call each, and a run that ends
first (an idle guest's HLT) never wakes the thread. A condition-variable watchdog needs two
thread wake-ups per run for the same, which cost an idle guest at 1 kHz a fifth of its host
CPU time; it remains as the portable fallback.
"""
import threading
import time


def make_watchdog(fire):
    """The timerfd watchdog where the host has timerfd, else the condition-variable one."""
    try:
        return TimerFdWatchdog(fire)
    except (OSError, AttributeError):
        return ConditionWatchdog(fire)


class TimerFdWatchdog:
    """A CLOCK_MONOTONIC timerfd (vmm/host/timerfd.py) and a thread blocked in read() on it,
    without the GIL. (timerfd_settime also drops an expiry the thread has not read yet, so
    a cancelled deadline does not fire late.)"""

    def __init__(self, fire):
        from ..host.timerfd import TimerFd
        self._timer = TimerFd()
        self._fire = fire
        self._lock = threading.Lock()       # no fire() once close() has returned
        self._closed = False
        self.fire_at, self.cancel = self._timer.fire_at, self._timer.cancel
        threading.Thread(target=self._loop, name="unicorn-watchdog", daemon=True).start()

    def close(self):
        with self._lock:                    # (the thread closes the fd only after this)
            if not self._closed:
                self._closed = True
                self._timer.fire_at(0.0)    # wake the thread: it closes the fd and ends

    def _loop(self):
        timer = self._timer
        while True:
            try:
                timer.wait()
            except InterruptedError:
                continue
            except OSError:
                return
            with self._lock:
                if self._closed:
                    break
                self._fire()
        timer.close()


class ConditionWatchdog:
    """The portable watchdog: a thread waiting on a condition variable until the deadline."""

    def __init__(self, fire):
        self._fire = fire
        self._cond = threading.Condition()
        self._at = None
        self._closed = False
        threading.Thread(target=self._loop, name="unicorn-watchdog", daemon=True).start()

    def fire_at(self, when: float):
        with self._cond:
            self._at = when
            self._cond.notify()

    def cancel(self):
        with self._cond:
            self._at = None

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self):
        with self._cond:
            while not self._closed:
                if self._at is None:
                    self._cond.wait()
                    continue
                delay = self._at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                else:
                    self._at = None
                    self._fire()


class Wakeup:
    """A one-bit event for the HLT sleep: set() from any thread ends the current or next
    wait(). (threading.Event.wait builds a Condition waiter per call; this is one lock.)"""
    __slots__ = ("_lock",)

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()                # held = not set

    def set(self):
        try:
            self._lock.release()
        except RuntimeError:                # already set
            pass

    def clear(self):
        self._lock.acquire(False)

    def wait(self, timeout=None):
        """Until set() or `timeout` seconds; consumes the set."""
        self._lock.acquire(True, -1 if timeout is None else timeout)
