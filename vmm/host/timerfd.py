"""timerfd(2) on CLOCK_MONOTONIC, the clock of time.monotonic(): a file descriptor that becomes
readable at an absolute time. Arming and cancelling are one timerfd_settime each, with a
preallocated itimerspec (no allocation per call)."""
import ctypes
import os

from .libc import check, prototype

CLOCK_MONOTONIC = 1
TFD_CLOEXEC = 0o2000000
TFD_TIMER_ABSTIME = 1


class _ItimerSpec(ctypes.Structure):
    """struct itimerspec: it_interval (left zero: one-shot), then it_value."""
    _fields_ = [("interval_sec", ctypes.c_long), ("interval_nsec", ctypes.c_long),
                ("value_sec", ctypes.c_long), ("value_nsec", ctypes.c_long)]


_create = prototype("timerfd_create", ctypes.c_int, ctypes.c_int, ctypes.c_int)
_settime = prototype("timerfd_settime", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p,
                     ctypes.c_void_p)


class TimerFd:
    """A one-shot CLOCK_MONOTONIC timer. wait() blocks (without the GIL) until it expires
    or the fd is closed; OSError from wait() means it was closed."""

    def __init__(self):
        self.fd = check(_create(CLOCK_MONOTONIC, TFD_CLOEXEC), "timerfd_create")
        self._spec, self._off = _ItimerSpec(), _ItimerSpec()
        self._spec_ref, self._off_ref = ctypes.byref(self._spec), ctypes.byref(self._off)

    def fire_at(self, when: float) -> None:
        """Expire at `when` (time.monotonic() seconds); a time already past expires at once."""
        seconds = int(when)
        spec = self._spec
        spec.value_sec, spec.value_nsec = seconds, max(1, int((when - seconds) * 1e9))
        _settime(self.fd, TFD_TIMER_ABSTIME, self._spec_ref, None)

    def cancel(self) -> None:
        """Disarm; an expiry not yet read is dropped too, so it does not fire late."""
        _settime(self.fd, 0, self._off_ref, None)

    def wait(self) -> None:
        """Until the timer expires (the expiry count is read and dropped)."""
        os.read(self.fd, 8)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)
