"""How a VM run ends (Outcome), and where devices and the VMM ask it to stop (RunControl).

Shared by engines and devices, so that neither has to import the other.
"""
from .records import record

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
    """

    def __init__(self):
        self.stop: Outcome | None = None
        self.kick = None

    def request_stop(self, outcome: Outcome) -> None:
        if self.stop is None:
            self.stop = outcome
            if self.kick is not None:
                self.kick()
