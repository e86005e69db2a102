"""The software engine's guest clock: host time, plus the idle time the guest skipped.

On an emulated CPU, a guest that waits for its timer (a sleep, a driver's msleep, the
clocksource watchdog) costs wall time for nothing. So when the vCPU halts with its next timer
deadline near, the engine jumps this clock to the deadline instead of sleeping: the guest sees
the time pass and the interrupt arrive, at no host cost. Everything the guest measures time
with reads this one clock: the PIT, the local APIC timer, the TSC (RDTSC is hooked), so they
never disagree.

Skipping is a choice (MachineConfig.idle = "skip", `vmm run --idle skip`), off by default:
a user at a shell expects `sleep 5` to take five seconds, and a device that completes in real
time from another thread (or a person typing) would see the guest's clock race past it. When
on, the jump is bounded, so that an idle guest still sleeps in real time and a long-lived
guest stays near the host's time: a deadline more than SKIP_HORIZON_NS away is waited for,
and the guest's lead over the host's clock never exceeds MAX_LEAD_NS.
"""
import time

NS_PER_S = 1_000_000_000
SKIP_HORIZON_NS = NS_PER_S              # a deadline further away than this is waited for
MAX_LEAD_NS = 30 * NS_PER_S             # the most the guest's clock may run ahead of the host's


class GuestClock:
    def __init__(self, tsc_hz: int, host_ns=time.monotonic_ns, skip_idle: bool = False):
        self.tsc_hz = tsc_hz
        self.skip_idle = skip_idle
        self._host_ns = self._real_host_ns = host_ns
        self._frozen_host_ns = None     # the host time guest time stopped at (freeze)
        self._origin = host_ns()        # the TSC counts from the VM's creation
        self.lead_ns = 0                # guest time minus host time: the idle time skipped

    def ns(self) -> int:
        """Now, in guest nanoseconds (on the host's monotonic scale, plus the lead)."""
        return self._host_ns() + self.lead_ns

    def tsc(self) -> int:
        return (self.ns() - self._origin) * self.tsc_hz // NS_PER_S

    def host_ns(self, guest_ns: int) -> int:
        """When, on the host's monotonic clock, the guest's clock reads `guest_ns`."""
        return guest_ns - self.lead_ns

    def set_tsc(self, tsc: int) -> None:
        """Make the TSC read `tsc` now and count on from there (a restored snapshot's)."""
        self._origin = self.ns() - tsc * NS_PER_S // self.tsc_hz

    def freeze(self) -> None:
        """Stop guest time (a paused VM): ns() and tsc() keep their value until thaw()."""
        if self._frozen_host_ns is None:
            self._frozen_host_ns = self._host_ns()
            self._host_ns = lambda: self._frozen_host_ns

    def thaw(self) -> None:
        """Guest time goes on from where freeze() stopped it: the pause is skipped, not seen."""
        frozen, self._frozen_host_ns = self._frozen_host_ns, None
        if frozen is not None:
            self._host_ns = self._real_host_ns
            self.lead_ns -= self._host_ns() - frozen

    def skip_to(self, guest_ns: int) -> bool:
        """Jump to `guest_ns` if it is near enough and the lead allows; True if it did (or
        the time has come already), False if the caller must wait for it in real time."""
        gap = guest_ns - self.ns()
        if gap <= 0:
            return True
        if not self.skip_idle or gap > SKIP_HORIZON_NS or self.lead_ns + gap > MAX_LEAD_NS:
            return False
        self.lead_ns += gap
        return True
