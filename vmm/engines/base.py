"""The interface every CPU engine implements, and the outcome of running a VM.

An engine owns one vCPU. It is built on a GuestMemory, the two buses and a RunControl:
- it executes guest code from the state given to set_state();
- each port or MMIO access the guest makes goes to ports.read/write or mmio.read/write;
- after every exit it checks control.stop, the outcome a device (the debug-exit port) or
  the VMM asked for, and returns it; no guest I/O issued after that request takes effect;
- it ends by itself on HLT with IF=0, a triple fault, an emulation failure, an engine
  error, or when `timeout` seconds have passed.
"""
import time
from dataclasses import dataclass, field

# The outcome types live in vmm/outcome.py, shared with the devices that request stops;
# they are re-exported here because every engine needs them.
from ..outcome import (CRASHES, DEBUG_EXIT, EMULATION_FAILURE, ENGINE_ERROR, ENTRY_FAILURE,  # noqa: F401
                       HALT, INTERNAL_ERROR, INTERRUPTED, SHUTDOWN, SYSTEM_EVENT, TIMEOUT,
                       Outcome, RunControl)


@dataclass
class ExitCounts:
    """Exit statistics: counted per exit with one integer add, turned into names at the end."""
    by_reason: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {name: count for name, count in self.by_reason.items() if count}


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

    def exit_counts(self) -> dict:
        """{reason name: count} of the exits this engine handled."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


def deadline_after(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout
