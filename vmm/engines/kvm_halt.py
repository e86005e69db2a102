"""Noticing a KVM vCPU that halted with interrupts off (engines/kvm.py, HLT).

With the in-kernel irqchip, KVM keeps HLT to itself, and a HLT with IF=0 never exits: the
engine's watchdog polls HaltWatch.due() and kicks the vCPU when it has sat in the same HLT
for a whole interval, so that the EINTR path can look at its state.
"""
from ..kvm import KvmError
from ..kvm.stats import Stats

# How often the watchdog looks for a vCPU halted with interrupts off: 10 ms after run()
# starts, then at intervals doubling up to 100 ms. A `cli; hlt` is noticed 1-2 intervals
# after it: within 30 ms early in a run, 200 ms later on. Each look costs the watchdog
# thread a wake-up (about 0.1 ms of CPU here), 10 a second in the long run.
HALT_POLL_SECONDS = (0.01, 0.1)
HALT_POLL_BLIND_SECONDS = (0.1, 0.1)    # without KVM statistics: a kick this often, halted or not


class HaltWatch:
    """Tells the watchdog when a kick is worth making to look for a HLT with interrupts off
    (see HLT in engines/kvm.py). due() runs in the watchdog thread at `intervals`
    (Watchdog's poll_intervals): true once the vCPU has been blocking in the same HLT (its
    `halt_exits` count unchanged) at two polls in a row, and only once per HLT; a guest that
    halts between timer ticks is never kicked. Without KVM's statistics (before Linux 5.14)
    it is always true: a blind periodic kick."""

    def __init__(self, vcpu):
        self._stats = self._read = None
        try:
            self._stats = Stats(vcpu.fd)
            self._read = self._stats.reader("blocking", "halt_exits")
        except (KvmError, OSError, KeyError):
            self.close()
        self.intervals = HALT_POLL_SECONDS if self._read is not None else HALT_POLL_BLIND_SECONDS
        self.reset()

    def reset(self) -> None:
        self._seen = None           # halt_exits when last seen blocking
        self._kicked = None         # halt_exits we kicked for

    def blocking(self):
        """Whether the vCPU sits in a HLT now, from any thread; None without the statistics."""
        return None if self._read is None else bool(self._read()[0])

    def due(self) -> bool:
        if self._read is None:
            return True
        blocking, halts = self._read()
        if not blocking:
            self._seen = None
            return False
        if halts == self._kicked:
            return False
        if halts != self._seen:
            self._seen = halts
            return False
        self._kicked = halts
        return True

    def close(self) -> None:
        stats, self._stats, self._read = self._stats, None, None
        if stats is not None:
            stats.close()
