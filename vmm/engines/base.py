"""The interface every CPU engine implements, its debug interface, and how a run ends.

An engine owns one vCPU. It is built on a GuestMemory, the two buses and a RunControl:
- it executes guest code from the state given to set_state();
- each port or MMIO access the guest makes goes to ports.read/write or mmio.read/write;
- after every exit it checks control.stop, the outcome a device (the debug-exit port) or
  the VMM asked for, and returns it; no guest I/O issued after that request takes effect;
- it ends by itself on HLT with IF=0, a triple fault, an emulation failure, an engine
  error, or when `timeout` seconds have passed.

engine.debug() gives its debug interface (EngineDebug, below; engines/kvm_debug.py and
engines/unicorn_debug.py): everything the gdb stub, the instruction tracer and crash
reports may do with the vCPU, and all they do.
"""
import threading
import time

from ..arch.x86 import paging as x86_paging
# The outcome types live in vmm/outcome.py, shared with the devices that request stops;
# they are re-exported here because every engine needs them.
from ..outcome import (CRASHES, DEBUG_EXIT, EMULATION_FAILURE, ENGINE_ERROR, ENTRY_FAILURE,  # noqa: F401
                       HALT, INTERNAL_ERROR, INTERRUPTED, PAUSED, SHUTDOWN, SYSTEM_EVENT, TIMEOUT,
                       Outcome, RunControl)


class Engine:
    """Abstract base: see the module docstring for the contract."""
    name = "abstract"

    def __init__(self, memory, ports, mmio, control: RunControl, cpuid):
        self.memory = memory
        self.ports = ports
        self.mmio = mmio
        self.control = control
        self.cpuid = cpuid

    @classmethod
    def probe(cls) -> str | None:
        """None if this engine can run here, else a one-line reason why not."""
        raise NotImplementedError

    @classmethod
    def missing_features(cls) -> dict:
        """{feature: reason} for guest-visible behaviour this engine cannot provide here.
        Guest programs that `require:` such a feature are skipped on it, with the reason."""
        return {}

    @classmethod
    def prepare(cls, memory):
        """Start, on another thread, what the engine will need from the host (KVM: the VM with
        `memory` mapped, and its vCPU), so that it overlaps the machine's own set-up; None if
        nothing is worth it. The result goes to the constructor as `prepared`, and has discard().
        `memory`'s regions must be final (no ROM added after)."""
        return None

    @classmethod
    def tsc_khz(cls) -> int:
        """The rate of the TSC the guest will read, for the CPUID timing leaf."""
        raise NotImplementedError

    def set_state(self, state) -> None:
        """Load an arch.x86.cpu_state.CpuState into the vCPU."""
        raise NotImplementedError

    def get_state(self):
        """The vCPU's current CpuState (for crash reports and tests)."""
        raise NotImplementedError

    def irq_line(self, gsi: int):
        """A callable `line(level: bool)` driving input `gsi` (an ISA IRQ number) of the
        platform's interrupt controller; devices call it from any thread."""
        raise NotImplementedError

    def leave_lint0_masked(self) -> None:
        """Before the first run: mask the local APIC's LINT0, as firmware leaves it for an
        OS that uses the IOAPIC (the reset state passes the 8259A's INTR; Linux keeps LINT0
        as it finds it, and nobody programs the PIC on its hardware-reduced ACPI platform)."""

    def skip_idle_time(self, enabled: bool) -> None:
        """Whether a vCPU halted until its next timer deadline may jump the guest's clock
        there instead of waiting (engines/guest_clock.py); engines whose clock is the
        host's (KVM) always wait."""

    def run(self, timeout: float | None = None) -> Outcome:
        raise NotImplementedError

    # --- snapshots: the engine's module `snapshot_module` does the work --------------------------
    # The vCPU and the interrupt platform in the engine-neutral format (arch/x86/cpu_snapshot.py,
    # devices/state.py), so a snapshot saved on one engine loads on the other; called only
    # while the vCPU is not running (paused, or before the first run).
    snapshot_module = None

    def _snapshot_part(self, name: str):
        import importlib
        return getattr(importlib.import_module(f"{__package__}.{self.snapshot_module}"), name)

    def save_vcpu(self) -> dict:
        return self._snapshot_part("save_vcpu")(self)

    def load_vcpu(self, state: dict) -> None:
        self._snapshot_part("load_vcpu")(self, state)

    def save_platform(self) -> dict:
        """The PIC pair, PIT, local APIC and IOAPIC, timer deadlines as guest time from now."""
        return self._snapshot_part("save_platform")(self)

    def load_platform(self, state: dict) -> None:
        self._snapshot_part("load_platform")(self, state)

    def freeze_clock(self) -> None:
        """The VM pauses: guest time (TSC, timers) stands still until thaw_clock(), so that
        a pause, or the snapshot taken in it, is invisible to the guest."""
        self._snapshot_part("freeze_clock")(self)

    def thaw_clock(self) -> None:
        self._snapshot_part("thaw_clock")(self)

    def idle(self):
        """From any thread: whether the vCPU sits in HLT waiting for an interrupt now (a guest
        asleep or waiting for input); None where the engine cannot tell."""
        return self._snapshot_part("idle")(self)

    def track_dirty_pages(self) -> None:
        """Start logging the guest's writes to RAM, for snapshots that write only what changed
        (dirty_pages()); UsageError where the engine has no such log."""
        try:
            track = self._snapshot_part("track_dirty_pages")
        except AttributeError:
            from ..errors import UsageError
            raise UsageError(f"the {self.name} engine keeps no dirty-page log (diff snapshots need KVM)") from None
        track(self)

    def dirty_pages(self) -> bytes:
        """A bitmap, one bit per page of RAM, of the pages the guest wrote since the last call."""
        return self._snapshot_part("dirty_pages")(self)

    def exit_counts(self) -> dict:
        """{reason name: count} of the exits this engine handled."""
        raise NotImplementedError

    def debug(self) -> "EngineDebug":
        """This engine's debug interface (one per engine, made on first use)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


class DebugView:
    """Registers and memory as a debugger sees them: a CpuState, and guest RAM by linear
    address through that state's own page tables (arch/x86/paging.py). This one shows a
    saved state; EngineDebug shows a live vCPU. Reads never raise: a failure is text."""

    def __init__(self, memory, state=None):
        self.memory = memory
        self._state = state

    def read_state(self):
        return self._state

    def paging(self) -> x86_paging.Paging:
        return x86_paging.Paging.of(self.read_state())

    def translate(self, address: int) -> x86_paging.Translation:
        return x86_paging.translate(self.paging(), self.memory, address)

    def read_memory(self, address: int, length: int):
        """(bytes, error): the bytes at a linear address, fewer than `length` (with `error`
        saying why) if the range runs into an unmapped page."""
        return x86_paging.read(self.paging(), self.memory, address, length)

    def write_memory(self, address: int, data: bytes):
        """None, or an error text (nothing is written unless every page translates)."""
        return x86_paging.write(self.paging(), self.memory, address, bytes(data))


class EngineDebug(DebugView):
    """An engine's debug interface. Every call but pause() is made on the vCPU thread (the one
    that would call engine.run()).

      read_state(), write_state(state), read_fpu()      registers (CpuState; x87/SSE as a dict)
      read_memory(), write_memory(), translate()        memory by linear address (DebugView)
      run(single_step, breakpoints) -> Outcome          run until the next instruction
            (single_step) or an execution breakpoint at one of the linear addresses in
            `breakpoints`, or until the VM ends. Between runs guest memory is as the guest left
            it (KVM's int3 breakpoints are in place only while it runs). The
            debugger's own stops are Outcome(DEBUG_STOP) and Outcome(PAUSED) (vmm/outcome.py):
            the VM goes on after them; every other outcome ended it.
      pause()               any thread: a run() in progress returns PAUSED soon, at an
                            instruction boundary, resumable; one made while nothing runs
                            waits (pause_pending) until clear_pause()
      trace(tracer)         feed an InstructionTracer (vmm/debug/trace.py) every instruction
                            from now on; returns a handle whose detach() stops it
      observe_exits(observer)  exits that are not device accesses (HLT, shutdown...) go to
                            observer.other(name), where the engine has such exits
      stop_requested()      the stop the VMM asked for (RunControl.stop), or None
      close()               debugging off: the engine runs as if this never existed
    """

    def __init__(self, engine):
        super().__init__(engine.memory)
        self.engine = engine
        self._pause = threading.Event()

    def read_state(self):
        return self.engine.get_state()

    def write_state(self, state) -> None:
        self.engine.set_state(state)

    def read_fpu(self) -> dict:
        """x87 and SSE state: st (8 x 10 bytes), fctrl, fstat, ftag (abridged), fop, fioff,
        fooff, xmm (16 x 16 bytes), mxcsr."""
        raise NotImplementedError

    def run(self, single_step: bool, breakpoints=()) -> Outcome:
        raise NotImplementedError

    def pause(self) -> None:
        self._pause.set()

    def pause_pending(self) -> bool:
        return self._pause.is_set()

    def clear_pause(self) -> None:
        self._pause.clear()

    def trace(self, tracer):
        raise NotImplementedError

    def observe_exits(self, observer) -> None:
        pass

    def stop_requested(self):
        return self.engine.control.stop

    def close(self) -> None:
        pass
