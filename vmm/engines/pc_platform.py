"""The software engine's PC interrupt platform: interrupt controllers and timers in Python.

KVM keeps the PC's interrupt platform in the kernel; the unicorn engine brings its own, on
the port bus it is given, at the same ports (layout.py), so a guest sees the same PC on both
engines. This is the one place an engine imports device models (vmm/devices), as KVM owns
its in-kernel ones: the 8259A pair, the 8254 PIT (channel 0 on IRQ 0) and port 0x61, the
local APIC (MMIO at layout.LAPIC_BASE) and the IOAPIC (at layout.IOAPIC_BASE), all on one
guest clock (guest_clock.py) that the run loop may move ahead while the vCPU idles.

Interrupt inputs are routed as on a PC with an IOAPIC, and as KVM routes GSIs: ISA IRQ n
goes to PIC input n and to IOAPIC pin n; GSIs 16-23 to the IOAPIC only. The IOAPIC sends
its messages to the local APIC; the PIC's INTR reaches the CPU only while the local APIC
passes it (LINT0 as ExtINT, or the APIC disabled). The CPU's INTR is the local APIC's
deliverable vector, or the PIC's request through LINT0.

What the run loop asks, and nothing else (engines/unicorn.py):
  update()       bring every timer up to now: (INTR, the next timer deadline in guest ns)
  intr           the CPU's INTR line (one attribute read, no lock)
  acknowledge()  the INTA cycle: the vector to deliver
and it is told of a rising INTR through `on_intr(level)`. Devices drive interrupt inputs
from any thread through line(irq) (PlatformIrqLine).

Growing it (local APIC, IOAPIC, RTC, timers in guest time) does not touch the run loop:
  - a timer is any object with update(now_ns) and next_deadline_ns(); add_timer() puts its
    ports on the bus (a guest write there may reprogram it, so the next update() asks it
    again) and update() asks every timer;
  - an interrupt input goes through _route(irq, level): today to a PIC input; an IOAPIC's
    pin is one more destination there;
  - the CPU's INTR and INTA (intr, acknowledge()) are the 8259A pair's today; a local APIC
    takes their place there, with the PIC behind it as its ExtINT source.
One lock (`lock`) serialises all models between device threads, the guest's port accesses
and the run loop; `on_intr(level)` is called with it held and must not take it.
"""
import threading

from .. import layout
from ..arch.x86.cpuid import CRYSTAL_HZ
from ..devices.ioapic import IoApic
from ..devices.lapic import DELIVERY_EXTINT, LVT_LINT0, LVT_MASKED, LocalApic
from ..devices.pic import DualPic
from ..devices.pit import Pit8254, SystemControlPortB
from ..errors import VmmError

NEVER_NS = 1 << 63          # a time (ns) that never comes
ISA_IRQS = 16


class PcPlatform:
    def __init__(self, ports, mmio, clock, on_intr):
        self.lock = threading.Lock()
        self.ports = ports
        self.clock = clock
        self._on_intr = on_intr
        self.pic = DualPic(on_intr=self._pic_intr)
        self.timers = []
        # Until this guest time (ns) no timer has anything new to say, unless the guest
        # writes to a timer's ports: update() is then two comparisons.
        self._quiet_until = 0
        self._timer_ns = None
        self._pulsed = 0                # IRQs raised by pulse() and not yet acknowledged
        for base, device in ((layout.PIC_MASTER_PORT, self.pic.master), (layout.PIC_SLAVE_PORT, self.pic.slave)):
            ports.register(base, layout.PIC_PORT_COUNT, _Serialized(device, self.lock))
        self.pit = Pit8254(irq=self._pit_output, now_ns=clock.ns)
        self.port_b = SystemControlPortB(self.pit)
        self.add_timer(self.pit, [(layout.PIT_PORT, layout.PIT_PORT_COUNT, self.pit),
                                  (layout.SYSTEM_CONTROL_PORT_B, 1, self.port_b)])
        self.ioapic = IoApic(self._ioapic_message, pins=layout.IOAPIC_PINS)
        self.lapic = LocalApic(base=layout.LAPIC_BASE, bus_hz=CRYSTAL_HZ, tsc_hz=clock.tsc_hz, now_ns=clock.ns,
                               on_eoi=self.ioapic.end_of_interrupt, on_change=self._apic_intr)
        self.timers.append(self.lapic)
        mmio.register(layout.LAPIC_BASE, layout.LAPIC_SIZE, _TimerPort(self.lapic, self))
        mmio.register(layout.IOAPIC_BASE, layout.IOAPIC_SIZE, _Serialized(self.ioapic, self.lock))

    def mask_lint0(self) -> None:
        """Leave LINT0 masked, as firmware leaves it for an OS that runs the IOAPIC (QEMU
        microvm's does): the boot CPU's reset state passes the 8259A's INTR (virtual wire),
        and Linux keeps LINT0 as it finds it, so a PIC nobody programmed would deliver
        ISA IRQs as vectors 0-15."""
        with self.lock:
            self.lapic.lvt[LVT_LINT0] = DELIVERY_EXTINT | LVT_MASKED

    # --- snapshots: the engine-neutral platform state (vmm/snapshot; kvm_platform.py for KVM) ---
    def save_state(self) -> dict:
        with self.lock:
            return {"pic": {"master": self.pic.master.save_state(), "slave": self.pic.slave.save_state()},
                    "pit": dict(self.pit.save_state(), port_b=self.port_b.save_state()),
                    "lapic": self.lapic.save_state(), "ioapic": self.ioapic.save_state(), "pulsed": self._pulsed}

    def load_state(self, state: dict) -> None:
        """Every model as saved (raises devices.state.StateError); the timers are asked again
        at the next update()."""
        from ..devices.state import need
        with self.lock:
            pic = need(state, "pic", dict, "platform")
            self.pic.master.load_state(need(pic, "master", dict, "pic"))
            self.pic.slave.load_state(need(pic, "slave", dict, "pic"))
            pit = need(state, "pit", dict, "platform")
            self.pit.load_state(pit)
            self.port_b.load_state(need(pit, "port_b", dict, "pit"))
            self.lapic.load_state(need(state, "lapic", dict, "platform"))
            self.ioapic.load_state(need(state, "ioapic", dict, "platform"))
            self._pulsed = state.get("pulsed", 0) if isinstance(state.get("pulsed"), int) else 0
            self._quiet_until = 0

    def add_timer(self, timer, port_ranges) -> None:
        """A timer (update(now_ns), next_deadline_ns()) and the ports that program it:
        [(base, count, device)]."""
        self.timers.append(timer)
        for base, count, device in port_ranges:
            self.ports.register(base, count, _TimerPort(device, self))
        self._quiet_until = 0

    def _pit_output(self, level: bool) -> None:
        self._route(layout.PIT_IRQ, level)        # (the PIT calls this with the lock held)

    def _route(self, irq: int, level: bool) -> None:
        """An interrupt input changed (lock held): to its PIC input (ISA IRQs) and its
        IOAPIC pin."""
        if irq < ISA_IRQS:
            self.pic.set_irq(irq, level)
        self.ioapic.set_irq(irq, level)

    def _ioapic_message(self, vector: int, level: bool) -> None:
        self.lapic.accept(vector, level)          # (lock held) -> _apic_intr

    def _pic_intr(self, level: bool) -> None:
        if not level or self.lapic.accepts_pic():
            self._on_intr(level)

    def _apic_intr(self) -> None:
        self._on_intr(True)

    # --- what the run loop asks ----------------------------------------------------------------
    def update(self):
        """Bring every timer's interrupt output up to now: (INTR, the next timer deadline
        in guest ns or None)."""
        now = self.clock.ns()
        if now < self._quiet_until:
            return self.intr, self._timer_ns
        with self.lock:
            deadline = None
            for timer in self.timers:
                timer.update(now)
                due = timer.next_deadline_ns()
                if due is not None and (deadline is None or due < deadline):
                    deadline = due
            self._timer_ns = deadline
            self._quiet_until = NEVER_NS if deadline is None else deadline
            return self.intr, deadline

    @property
    def intr(self) -> bool:
        """The CPU's INTR line now (attribute reads: no lock needed to look)."""
        lapic = self.lapic
        if lapic.irr and lapic.pending_vector() is not None:
            return True
        return self.pic.master.int_out and lapic.accepts_pic()

    def acknowledge(self) -> int:
        """The INTA cycle: the local APIC's vector, else the PIC's through LINT0 (IR7's
        when its request vanished)."""
        with self.lock:
            lapic = self.lapic
            if lapic.pending_vector() is not None:
                return lapic.acknowledge()
            vector = self.pic.acknowledge()
            if self._pulsed:
                self._end_pulses()
            return vector

    def timers_touched(self) -> None:
        """A guest write to a timer's ports: the next update() asks the timers again."""
        self._quiet_until = 0

    # --- interrupt inputs, from devices on any thread ---------------------------------------------
    def line(self, irq: int) -> "PlatformIrqLine":
        if not 0 <= irq < layout.IOAPIC_PINS or irq == layout.PIC_CASCADE_IRQ:
            raise VmmError(f"GSI {irq} is not an interrupt input (0-{layout.IOAPIC_PINS - 1}, but not the"
                           f" PIC cascade input {layout.PIC_CASCADE_IRQ})")
        return PlatformIrqLine(self, irq)

    def set_line(self, irq: int, level: bool) -> None:
        with self.lock:
            self._pulsed &= ~(1 << irq)
            self._route(irq, level)

    def pulse(self, irq: int) -> None:
        """An edge on `irq` that is held until the CPU takes it (see PlatformIrqLine.pulse)."""
        bit = 1 << irq
        with self.lock:
            if self._pulsed & bit:
                self._route(irq, False)             # still up from the last pulse: a new edge
            self._route(irq, True)
            self._pulsed |= bit

    def _end_pulses(self) -> None:
        """Lower the pulsed lines whose request the acknowledge took (an edge request leaves
        IRR at INTA); a masked one stays latched, as in KVM."""
        pic = self.pic
        for irq in range(ISA_IRQS):
            bit = 1 << irq
            if self._pulsed & bit:
                chip, ir = (pic.master, irq) if irq < 8 else (pic.slave, irq - 8)
                if not chip.irr >> ir & 1:
                    self._pulsed &= ~bit
                    self._route(irq, False)


class PlatformIrqLine:
    """One ISA interrupt input of the platform as a device's `irq(level)`, callable from any
    thread; the same shape as KVM's line (vmm/kvm/vm.py KvmIrqLine). Devices drive levels
    (`line(True)` until serviced, then `line(False)`); on the 8259A, as on the chip, a
    request that falls before the CPU acknowledges it is withdrawn and the acknowledge
    yields the spurious IR7 vector.

    pulse() is an edge for callers that have no level to hold (tests, benchmarks): the line
    rises now and falls when the CPU takes the interrupt, so the edge is never lost, which
    is what KVM's in-kernel PIC does with a raise-and-lower."""
    __slots__ = ("irq", "_platform")

    def __init__(self, platform: PcPlatform, irq: int):
        self.irq = irq
        self._platform = platform

    def __call__(self, level) -> None:
        self._platform.set_line(self.irq, bool(level))

    def pulse(self) -> None:
        self._platform.pulse(self.irq)

    def __repr__(self) -> str:
        return f"PlatformIrqLine(irq={self.irq})"


class _Serialized:
    """A port device whose accesses take the platform lock."""
    __slots__ = ("_device", "_lock")

    def __init__(self, device, lock):
        self._device = device
        self._lock = lock

    def read(self, offset, size):
        with self._lock:
            return self._device.read(offset, size)

    def write(self, offset, size, value):
        with self._lock:
            self._device.write(offset, size, value)


class _TimerPort(_Serialized):
    """A timer's ports: a write may reprogram it, so the platform's next update() must ask
    the timers again."""
    __slots__ = ("_platform",)

    def __init__(self, device, platform):
        super().__init__(device, platform.lock)
        self._platform = platform

    def write(self, offset, size, value):
        with self._lock:
            self._device.write(offset, size, value)
            self._platform.timers_touched()
