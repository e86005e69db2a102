"""DebugTarget: what the gdb stub needs from a vCPU, on any engine's debug interface.

    target = DebugTarget(engine.debug())        # engines/base.py EngineDebug
    target.add_breakpoint(0x103de0)
    stop = target.resume()                      # runs the guest on this thread
    stop.signal == SIGTRAP, target.read_state().rip == 0x103de0

All calls but interrupt() are made on the vCPU thread (the one that would call
engine.run()); interrupt() may come from any thread and makes a running resume()/step()
return soon with a SIGINT stop, the guest's state exact and resumable.

Addresses are linear (gdb's virtual addresses; in 64-bit code, linear = virtual). Memory is
read and written through the guest's page tables; an unmapped address raises MemoryFault.
How each engine sets breakpoints and steps is its debug interface's business
(engines/kvm_debug.py, engines/unicorn_debug.py); here: the breakpoint set, stepping over a
breakpoint the guest sits on before resuming, and turning the run's Outcome into a Stop.
The debugger's own outcomes (DEBUG_STOP, PAUSED) never reach the VMM; every other one
means the VM has ended.
"""
from dataclasses import dataclass

from ..arch.x86.paging import linear_address
from ..outcome import CRASHES, DEBUG_STOP, PAUSED, Outcome

# gdb's signal numbers (gdb/signals.def), for stop replies.
SIGINT = 2
SIGTRAP = 5
SIGKILL = 9
SIGSEGV = 11


class MemoryFault(Exception):
    """A guest virtual address that does not translate to RAM."""


@dataclass
class Stop:
    """Why resume()/step() returned. `signal` is set while the guest can still be debugged
    (SIGTRAP: breakpoint or step, SIGINT: interrupted, SIGSEGV: the guest crashed and can be
    inspected but not resumed); `outcome` is set when the VM has ended (or crashed)."""
    signal: int | None
    outcome: Outcome | None = None

    @property
    def ended(self) -> bool:
        return self.outcome is not None


class DebugTarget:
    def __init__(self, debug):
        self.debug = debug
        self.breakpoints = set()
        self.ended = None               # the Outcome that ended the VM, once it has

    # --- registers and memory ----------------------------------------------------------------
    def read_state(self):
        return self.debug.read_state()

    def write_state(self, state) -> None:
        self.debug.write_state(state)

    def read_fpu(self) -> dict | None:
        return self.debug.read_fpu()

    def read_memory(self, address: int, length: int) -> bytes:
        """The bytes at a virtual address; fewer than `length` if the range runs into an
        unmapped page, MemoryFault if its first byte is unmapped."""
        data, error = self.debug.read_memory(address, length)
        if error and not data:
            raise MemoryFault(error)
        return data

    def write_memory(self, address: int, data: bytes) -> None:
        error = self.debug.write_memory(address, bytes(data))
        if error:
            raise MemoryFault(error)

    def stop_requested(self):
        """The Outcome the VMM asked the run to end with (RunControl.stop), or None: the
        stub ends a session with it even while the guest is stopped."""
        return self.debug.stop_requested()

    def pc(self) -> int:
        """The linear address of the next instruction."""
        state = self.debug.read_state()
        return linear_address(state, state.cs, state.rip)

    # --- breakpoints ---------------------------------------------------------------------------
    def add_breakpoint(self, address: int) -> None:
        self.breakpoints.add(address)

    def remove_breakpoint(self, address: int) -> None:
        self.breakpoints.discard(address)

    def clear_breakpoints(self) -> None:
        self.breakpoints.clear()

    # --- running -------------------------------------------------------------------------------
    def step(self) -> Stop:
        if self.ended is not None:
            return Stop(None, self.ended)
        if self._take_pause():
            return Stop(SIGINT)
        return self._stop(self.debug.run(True, ()))

    def resume(self) -> Stop:
        if self.ended is not None:
            return Stop(None, self.ended)
        if self._take_pause():
            return Stop(SIGINT)
        if self.breakpoints and self.pc() in self.breakpoints:
            stop = self._stop(self.debug.run(True, ()))     # step over the breakpoint we sit on
            if stop.signal != SIGTRAP or self.pc() in self.breakpoints:
                return stop
        return self._stop(self.debug.run(False, frozenset(self.breakpoints)))

    def interrupt(self) -> None:
        """Any thread: make a running step()/resume() return a SIGINT stop soon."""
        self.debug.pause()

    def cancel_interrupt(self) -> None:
        """Drop an interrupt() that came too late to stop the last run (vCPU thread)."""
        self._take_pause()

    def _take_pause(self) -> bool:
        """An interrupt() that came while nothing ran: it stops the next run before it starts."""
        if not self.debug.pause_pending():
            return False
        self.debug.clear_pause()
        return True

    def _stop(self, outcome: Outcome) -> Stop:
        if outcome.reason == DEBUG_STOP:
            return Stop(SIGTRAP)
        if outcome.reason == PAUSED:
            self.debug.clear_pause()
            return Stop(SIGINT)
        self.ended = outcome
        return Stop(SIGSEGV if outcome.reason in CRASHES else None, outcome)

    def close(self) -> None:
        """Debugging off; the engine runs as if the target never existed."""
        self.debug.close()
