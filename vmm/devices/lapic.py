"""A local APIC in xAPIC mode, for the software engine (KVM has its own in the kernel).

Register layout and semantics: Intel SDM vol. 3A, chapter 11 ("Advanced Programmable
Interrupt Controller"): 11.4 (IA32_APIC_BASE, the MMIO page), 11.5.1 (LVT), 11.5.4 (the
timer: one-shot, periodic, TSC-deadline), 11.6.1 (ICR: self-IPIs), 11.8.3-11.8.5 (IRR, ISR,
TMR, PPR, EOI), 11.9 (the spurious vector and software enable). QEMU hw/intc/apic.c and KVM
arch/x86/kvm/lapic.c are readable peers.

One vCPU: interrupt commands reach only this APIC (self, or our own ID); INIT/SIPI and other
destinations are ignored. The timer counts on `now_ns` (the engine's guest clock) at
`bus_hz` / divide, and TSC-deadline mode compares the guest TSC (`tsc_hz` on the same clock).
Nothing runs in the background: the engine calls update(now) before it looks for a pending
interrupt, and asks next_deadline_ns() when to stop the CPU next.

After reset LVT0 is ExtINT and unmasked (virtual-wire mode, as KVM sets up the boot CPU), so
the 8259A's INTR reaches the CPU until the guest reprograms LINT0: accepts_pic() says whether
it does now.
"""
import time

from ..arch.x86.apic import (APIC_BASE_MSR, TSC_DEADLINE_MSR, BASE_BSP, BASE_ENABLE, BASE_ADDRESS_MASK, ID,
                             VERSION, TPR, APR, PPR, EOI, RRD, LDR, DFR, SVR, ISR, TMR, IRR, ESR, LVT_CMCI,
                             ICR_LOW, ICR_HIGH, LVT_TIMER, LVT_THERMAL, LVT_PERF, LVT_LINT0, LVT_LINT1, LVT_ERROR,
                             TIMER_INITIAL, TIMER_CURRENT, TIMER_DIVIDE, LVT_REGISTERS, APIC_VERSION, SVR_ENABLE,
                             SVR_SUPPRESS_EOI_BROADCAST, LVT_MASKED, LVT_LEVEL, LVT_VECTOR, LVT_DELIVERY_MODE,
                             DELIVERY_FIXED, DELIVERY_NMI, DELIVERY_INIT, DELIVERY_STARTUP, DELIVERY_EXTINT,
                             TIMER_MODE_SHIFT, TIMER_ONE_SHOT, TIMER_PERIODIC, TIMER_TSC_DEADLINE,
                             ICR_SHORTHAND_SHIFT, SHORTHAND_NONE, SHORTHAND_SELF, SHORTHAND_ALL, SHORTHAND_OTHERS,
                             ICR_LEVEL_TRIGGER, DIVIDERS)  # noqa: F401 (the model's namespace, as tests use it)

RESET_LVT = LVT_MASKED
NS_PER_S = 1_000_000_000
NEVER = None


class LocalApic:
    def __init__(self, apic_id: int = 0, base: int = 0xFEE0_0000, bus_hz: int = NS_PER_S,
                 tsc_hz: int = NS_PER_S, now_ns=time.monotonic_ns, on_eoi=None, on_change=None):
        """on_eoi(vector): a level-triggered interrupt ended (the IOAPIC clears remote IRR).
        on_change(): an interrupt became deliverable (the engine stops the CPU to take it)."""
        self.apic_id = apic_id
        self.bus_hz = bus_hz
        self.tsc_hz = tsc_hz
        self._now = now_ns
        self._on_eoi = on_eoi
        self._on_change = on_change
        self.base_msr = base | BASE_BSP | BASE_ENABLE
        self.reset()

    def reset(self) -> None:
        self.irr = self.isr = self.tmr = 0     # 256-bit sets, one bit per vector
        self.tpr = 0
        self.ldr = 0
        self.dfr = 0xFFFF_FFFF
        self.svr = 0xFF                        # spurious vector 0xFF, software-disabled
        self.esr = 0
        self.icr_low = self.icr_high = 0
        self.lvt = {register: RESET_LVT for register in LVT_REGISTERS}
        self.lvt[LVT_LINT0] = DELIVERY_EXTINT  # virtual wire: the 8259A reaches the CPU
        self.lvt[LVT_LINT1] = DELIVERY_NMI
        self.divide_config = 0
        self.timer_initial = 0
        self._timer_start = 0
        self._deadline = NEVER                 # guest ns at which the timer fires next
        self.tsc_deadline = 0

    # --- snapshots (devices/state.py): the timer's deadline as guest ns from now ---------------
    STATE_VERSION = 1
    _STATE_FIELDS = ("apic_id", "base_msr", "irr", "isr", "tmr", "tpr", "ldr", "dfr", "svr", "esr", "icr_low",
                     "icr_high", "divide_config", "timer_initial", "tsc_deadline")

    def save_state(self) -> dict:
        from .state import pick
        deadline = self._deadline
        return dict(pick(self, self._STATE_FIELDS), lvt={f"{r:#x}": v for r, v in self.lvt.items()},
                    timer_remaining_ns=None if deadline is None else max(0, deadline - self._now()))

    def load_state(self, state: dict) -> None:
        from .state import StateError, checked, need, put
        put(self, state, self._STATE_FIELDS)
        lvt = need(state, "lvt", dict, "lapic")
        for register in LVT_REGISTERS:
            self.lvt[register] = need(lvt, f"{register:#x}", int, "lapic.lvt")
        remaining = checked(state.get("timer_remaining_ns"), None, "lapic.timer_remaining_ns")
        if remaining is not None and remaining < 0 or self.divide_config & ~0b1011:
            raise StateError("lapic: a negative timer deadline or a bad divide configuration")
        self._deadline = NEVER if remaining is None else self._now() + remaining
        self._timer_start = self._now()

    # --- state the engine asks for ---------------------------------------------------------
    @property
    def hardware_enabled(self) -> bool:
        return bool(self.base_msr & BASE_ENABLE)

    @property
    def software_enabled(self) -> bool:
        return self.hardware_enabled and bool(self.svr & SVR_ENABLE)

    def accepts_pic(self) -> bool:
        """Does the 8259A's INTR reach the CPU: a disabled APIC, or LINT0 unmasked as ExtINT."""
        if not self.hardware_enabled:
            return True
        lint0 = self.lvt[LVT_LINT0]
        return not lint0 & LVT_MASKED and lint0 & LVT_DELIVERY_MODE == DELIVERY_EXTINT

    def processor_priority(self) -> int:
        isr_class = self.isr.bit_length() - 1 & 0xF0 if self.isr else 0
        return self.tpr if (self.tpr & 0xF0) >= isr_class else isr_class

    def pending_vector(self):
        """The vector the CPU would take now (IRR's highest above the processor priority
        class), or None."""
        if not self.irr or not self.software_enabled:
            return None
        vector = self.irr.bit_length() - 1
        if vector & 0xF0 <= self.processor_priority() & 0xF0:
            return None
        return vector

    def acknowledge(self) -> int:
        """The INTA cycle: the highest IRR vector moves to ISR; the spurious vector if the
        request vanished in between (SDM 11.9)."""
        vector = self.pending_vector()
        if vector is None:
            return self.svr & 0xFF
        bit = 1 << vector
        self.irr &= ~bit
        self.isr |= bit
        return vector

    # --- inputs ----------------------------------------------------------------------------
    def accept(self, vector: int, level: bool = False) -> None:
        """A fixed interrupt from the IOAPIC, an IPI or a local source: IRR (and TMR) set."""
        if vector < 16 or not self.software_enabled:
            if vector < 16 and self.hardware_enabled:
                self.esr |= 1 << 6             # received illegal vector
            return
        bit = 1 << vector
        self.irr |= bit
        self.tmr = self.tmr | bit if level else self.tmr & ~bit
        if self._on_change is not None:
            self._on_change()

    def update(self, now: int | None = None) -> None:
        """Bring the timer up to `now`: a deadline passed sets its vector in IRR."""
        deadline = self._deadline
        if deadline is None:
            return
        if now is None:
            now = self._now()
        if now < deadline:
            return
        lvt = self.lvt[LVT_TIMER]
        mode = lvt >> TIMER_MODE_SHIFT & 3
        if mode == TIMER_PERIODIC and self.timer_initial:
            period = self._period_ns()
            missed = (now - deadline) // period
            self._deadline = deadline + (missed + 1) * period     # ticks missed coalesce into one
        else:
            self._deadline = NEVER
            if mode == TIMER_TSC_DEADLINE:
                self.tsc_deadline = 0
        if not lvt & LVT_MASKED:
            self.accept(lvt & LVT_VECTOR)

    def next_deadline_ns(self):
        return self._deadline

    # --- MSRs ------------------------------------------------------------------------------
    def read_msr(self, index: int) -> int:
        if index == APIC_BASE_MSR:
            return self.base_msr
        if index == TSC_DEADLINE_MSR:
            return self.tsc_deadline if self._timer_mode() == TIMER_TSC_DEADLINE else 0
        raise KeyError(index)

    def write_msr(self, index: int, value: int) -> None:
        if index == APIC_BASE_MSR:
            was_enabled = self.hardware_enabled
            self.base_msr = (self.base_msr & BASE_ADDRESS_MASK) | (value & (BASE_ENABLE | BASE_BSP))
            if was_enabled and not self.hardware_enabled:
                self.reset()                   # a globally disabled APIC loses its state (11.4.3)
        elif index == TSC_DEADLINE_MSR:
            if self._timer_mode() != TIMER_TSC_DEADLINE:
                return                         # ignored outside TSC-deadline mode
            self.tsc_deadline = value
            self._deadline = NEVER if value == 0 else value * NS_PER_S // self.tsc_hz
            self.update()
        else:
            raise KeyError(index)

    # --- the MMIO page ---------------------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        register = offset & 0xFF0
        value = self._read_register(register)
        shift = (offset & 3) * 8
        return value >> shift & ((1 << (8 * size)) - 1) if size < 4 else value

    def _read_register(self, register: int) -> int:
        if register == ID:
            return self.apic_id << 24
        if register == VERSION:
            return APIC_VERSION
        if register == TPR:
            return self.tpr
        if register == PPR:
            return self.processor_priority()
        if register == LDR:
            return self.ldr
        if register == DFR:
            return self.dfr
        if register == SVR:
            return self.svr
        if ISR <= register < ISR + 0x80:
            return self.isr >> (register - ISR) * 2 & 0xFFFF_FFFF
        if TMR <= register < TMR + 0x80:
            return self.tmr >> (register - TMR) * 2 & 0xFFFF_FFFF
        if IRR <= register < IRR + 0x80:
            return self.irr >> (register - IRR) * 2 & 0xFFFF_FFFF
        if register == ESR:
            return self.esr
        if register in self.lvt:
            return self.lvt[register]
        if register == ICR_LOW:
            return self.icr_low
        if register == ICR_HIGH:
            return self.icr_high
        if register == TIMER_INITIAL:
            return self.timer_initial
        if register == TIMER_CURRENT:
            return self._current_count()
        if register == TIMER_DIVIDE:
            return self.divide_config
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        register = offset & 0xFF0
        if register == ID:
            self.apic_id = value >> 24 & 0xFF
        elif register == TPR:
            self.tpr = value & 0xFF
            self._changed()
        elif register == EOI:
            self._eoi()
        elif register == LDR:
            self.ldr = value & 0xFF00_0000
        elif register == DFR:
            self.dfr = value | 0x0FFF_FFFF
        elif register == SVR:
            self.svr = value & (0xFF | SVR_ENABLE | SVR_SUPPRESS_EOI_BROADCAST)
            if not self.svr & SVR_ENABLE:      # software disable masks every LVT entry (11.4.7.2)
                for lvt in self.lvt:
                    self.lvt[lvt] |= LVT_MASKED
            self._changed()
        elif register == ESR:
            self.esr = 0
        elif register in self.lvt:
            self._write_lvt(register, value)
        elif register == ICR_LOW:
            self.icr_low = value & ~(1 << 12)   # delivery status: always idle
            self._send_ipi(value)
        elif register == ICR_HIGH:
            self.icr_high = value & 0xFF00_0000
        elif register == TIMER_INITIAL:
            self._start_timer(value)
        elif register == TIMER_DIVIDE:
            self.divide_config = value & 0b1011

    # --- internals -------------------------------------------------------------------------
    def _changed(self) -> None:
        if self._on_change is not None and self.pending_vector() is not None:
            self._on_change()

    def _timer_mode(self) -> int:
        return self.lvt[LVT_TIMER] >> TIMER_MODE_SHIFT & 3

    def _write_lvt(self, register: int, value: int) -> None:
        if not self.software_enabled:
            value |= LVT_MASKED
        if register == LVT_TIMER:
            old_mode = self._timer_mode()
            self.lvt[register] = value & (LVT_VECTOR | LVT_MASKED | 3 << TIMER_MODE_SHIFT)
            if self._timer_mode() != old_mode:  # a mode change stops the timer (11.5.4.1)
                self._deadline = NEVER
                self.timer_initial = 0
                self.tsc_deadline = 0
        else:
            self.lvt[register] = value & (LVT_VECTOR | LVT_MASKED | LVT_DELIVERY_MODE | LVT_LEVEL | 1 << 13)

    def _divider(self) -> int:
        config = self.divide_config
        return DIVIDERS[(config & 3) | (config >> 1 & 4)]

    def _period_ns(self) -> int:
        return max(1, self.timer_initial * self._divider() * NS_PER_S // self.bus_hz)

    def _start_timer(self, count: int) -> None:
        if self._timer_mode() == TIMER_TSC_DEADLINE:
            return                             # TMICT is ignored in TSC-deadline mode
        self.timer_initial = count & 0xFFFF_FFFF
        if not self.timer_initial:
            self._deadline = NEVER
            return
        self._timer_start = self._now()
        self._deadline = self._timer_start + self._period_ns()

    def _current_count(self) -> int:
        if self._deadline is None or self._timer_mode() == TIMER_TSC_DEADLINE or not self.timer_initial:
            return 0
        remaining = self._deadline - self._now()
        if remaining <= 0:
            return 0
        return min(self.timer_initial, remaining * self.bus_hz // (self._divider() * NS_PER_S))

    def _eoi(self) -> None:
        """End the highest-priority interrupt in service; broadcast a level one's EOI."""
        if not self.isr:
            return
        vector = self.isr.bit_length() - 1
        bit = 1 << vector
        self.isr &= ~bit
        if self.tmr & bit:
            self.tmr &= ~bit
            if self._on_eoi is not None and not self.svr & SVR_SUPPRESS_EOI_BROADCAST:
                self._on_eoi(vector)
        self._changed()

    def _send_ipi(self, icr: int) -> None:
        shorthand = icr >> ICR_SHORTHAND_SHIFT & 3
        mode = icr & LVT_DELIVERY_MODE
        to_self = (shorthand in (SHORTHAND_SELF, SHORTHAND_ALL)
                   or shorthand == SHORTHAND_NONE and self.icr_high >> 24 in (self.apic_id, 0xFF))
        if to_self and mode == DELIVERY_FIXED:
            self.accept(icr & LVT_VECTOR, level=False)
