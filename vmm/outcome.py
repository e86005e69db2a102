"""How a VM run ends (Outcome), where devices and the VMM ask it to stop (RunControl), and
how another thread pauses it (PauseGate).

Shared by engines and devices, so that neither has to import the other.
"""
import threading

from .records import record

from .errors import VmmError

# Outcome reasons, as the API and the CLI report them.
DEBUG_EXIT = "debug-exit"           # the guest wrote its status to the debug-exit port
HALT = "halt"                       # HLT with interrupts disabled: powered off, no status
SHUTDOWN = "shutdown"               # triple fault (KVM_EXIT_SHUTDOWN) or the equivalent
EMULATION_FAILURE = "emulation-failure"
ENTRY_FAILURE = "entry-failure"     # the hardware refused to enter the guest
INTERNAL_ERROR = "internal-error"
SYSTEM_EVENT = "system-event"       # the guest asked for reset or power-off (KVM_EXIT_SYSTEM_EVENT)
ENGINE_ERROR = "engine-error"       # the software engine gave up (a unicorn error)
TIMEOUT = "timeout"
INTERRUPTED = "interrupted"         # SIGINT or the console escape
OUTPUT_ERROR = "output-error"       # the guest's output could not be written (a full disk, a closed pipe)
# The debugger's own stops (engines' debug interfaces): the VM has not ended.
DEBUG_STOP = "debug-stop"           # a breakpoint was reached or a step completed
PAUSED = "paused"                   # the debugger paused the guest

# Reasons that mean the guest crashed (the CLI exits with GuestCrashed's status).
CRASHES = frozenset({SHUTDOWN, EMULATION_FAILURE, ENTRY_FAILURE, INTERNAL_ERROR, ENGINE_ERROR})


@record
class Outcome:
    reason: str
    status: int | None = None       # the guest's debug-exit status, if it wrote one
    detail: str = ""                # one line for humans: what happened and where
    rip: int | None = None


class RunControl:
    """Where devices and the VMM ask the running VM to stop.

    The engine installs `kick` (for example unicorn's emu_stop) so that a request made from
    inside a device callback takes effect at once; the engine then ignores any further
    device access until it returns (KVM would never have executed those instructions).

    A pause (`pause_requested`, PauseGate below) is not a stop: the engine returns
    Outcome(PAUSED) at its next instruction boundary, with nothing dropped, and the run goes
    on when the machine runs it again.
    """

    def __init__(self):
        self.stop: Outcome | None = None
        self.kick = None
        self.pause_requested = False

    def request_stop(self, outcome: Outcome) -> None:
        if self.stop is None:
            self.stop = outcome
            if self.kick is not None:
                self.kick()

    def request_pause(self) -> None:
        self.pause_requested = True
        if self.kick is not None:
            self.kick()


# --- pausing a VM from any thread while its vCPU thread runs it (Machine.pause/resume) -----------
# The requester sets RunControl.pause_requested and kicks the engine, which returns
# Outcome(PAUSED) at its next instruction boundary (KVM: the next KVM_RUN exit; unicorn: before
# the next translated block), with nothing half done. The vCPU thread then parks in the gate:
# it stops the guest's clock (engine.freeze_clock), says it is parked, and waits for resume() or
# a stop request, then starts the clock again. While it is parked, other threads may read and
# write the VM's state (a snapshot); the vCPU thread touches nothing. A VM that is not running
# (before run(), or between runs) is paused at once: there is no vCPU thread to wait for, and a
# run() started while paused parks before its first instruction.
PAUSE_TIMEOUT = 10.0         # seconds a pause waits for the vCPU to reach an instruction boundary


class PauseGate:
    def __init__(self, control, engine):
        self._control = control
        self._engine = engine
        self._cond = threading.Condition()
        self.paused = False          # a pause was asked for and not resumed
        self.parked = False          # the vCPU thread is parked (its clock frozen)
        self.running = False         # a run() is under way
        self.ended = None            # the Outcome that ended the VM, once it has

    # --- any thread ----------------------------------------------------------------------------
    def request(self) -> None:
        """Ask for a pause and return at once: from a device callback on the vCPU thread
        itself (which parks when the engine returns), or from any thread."""
        with self._cond:
            self._check_alive()
            self.paused = True
            self._control.request_pause()

    def pause(self, timeout: float = PAUSE_TIMEOUT) -> None:
        """Return once the vCPU is parked (or the VM is not running). VmmError if the VM has
        ended, or if the vCPU did not stop within `timeout` seconds."""
        with self._cond:
            self._check_alive()
            self.paused = True
            self._control.request_pause()
            if not self._cond.wait_for(lambda: self.parked or not self.running or self.ended, timeout):
                raise VmmError(f"the vCPU did not pause within {timeout:g} s")
            self._check_alive()

    def resume(self) -> None:
        with self._cond:
            self.paused = False
            self._control.pause_requested = False
            self._cond.notify_all()

    def wake(self) -> None:
        """A stop was requested: a parked vCPU thread leaves the gate to see it."""
        with self._cond:
            self._cond.notify_all()

    def _check_alive(self) -> None:
        if self.ended is not None:
            raise VmmError(f"the VM has ended ({self.ended.reason}: {self.ended.detail})")

    # --- the vCPU thread ------------------------------------------------------------------------
    def run_started(self) -> None:
        with self._cond:
            self.running = True

    def run_ended(self, outcome) -> None:
        """run() returns: `outcome` ended the VM (every outcome but a pause does)."""
        with self._cond:
            self.running = False
            self.ended = outcome
            self._cond.notify_all()

    def park_if_paused(self) -> None:
        """Wait here, the guest's clock stopped, while a pause is in force."""
        with self._cond:
            if not self.paused or self._control.stop is not None:
                return
        self._engine.freeze_clock()
        try:
            with self._cond:
                self.parked = True
                self._cond.notify_all()
                self._cond.wait_for(lambda: not self.paused or self._control.stop is not None)
                self.parked = False
        finally:
            self._engine.thaw_clock()
