"""The software CPU engine: unicorn 2.1.4 (QEMU's TCG) runs the vCPU inside this process.

run() is the engine's loop, to be read like KvmEngine._loop: bring the timers up to now and
deliver a pending interrupt, look at every reason to stop, sleep if halted, run guest code
(emu_start) until the stop switch is thrown or the guest executes HLT, then see why it ended.
While guest code runs, exits arrive as unicorn callbacks (unicorn_exits.py) and go to the
buses. The engine's other jobs each have a module:
  unicorn_exits.py       where an exit goes: IN/OUT, MMIO, CPUID, exception, SYSCALL callbacks
  x86_delivery.py        exceptions and interrupts through the guest's IDT; SYSCALL
  pc_platform.py         the PC interrupt platform: 8259A pair, 8254 PIT, port 0x61, IRQ lines
  host_timers.py         the watchdog that ends a run at a deadline; the HLT wake-up
  unicorn_code_cache.py  host writes into guest RAM, and the translated code they make stale
  unicorn_state.py       a CpuState into and out of the CPU
  unicorn_binding.py     every pointer: the hidden CPU state, the stop switch, raw callbacks
  unicorn_layout.py      where unicorn keeps that state: offsets found by experiment, once
  unicorn_debug.py       the debug interface (breakpoints, stepping, tracing)

Stopping. unicorn's own stops (timeout=, emu_stop) land in the middle of an instruction, and
a resumed run repeats it (shared notes, WARNING); count= is exact but makes guest code 5-12x
slower. We stop with the StopSwitch instead: before the next translated block starts, so the
CPU state is exact and a resumed run repeats nothing, at the cost of two C calls per block.
- control.kick (a device asked for a stop) throws the switch; the rest of the current block
  still runs, but every port or MMIO access it makes is dropped (KVM would never have run
  those instructions), so the outcome's RIP is the end of that block, not the instruction
  after the access.
- The watchdog throws it at the timeout, at the platform's next timer deadline, and every
  TICK seconds so that the Python main thread gets to handle signals (Ctrl-C) even while the
  guest computes without exits.
- Host writes into guest RAM made while the guest runs (DMA from a device callback) throw
  it, and the translated code is dropped before the guest continues.

Interrupts. Nothing ticks in the background: before each slice the loop brings the
platform's timers up to date (their interrupt edges go to the PIC) and the watchdog is set
for the next timer deadline. When the CPU's INTR rises, the switch is thrown (from whatever
thread raised it) and the slice ends before the next block. At the loop head, with INTR up:
- IF=1 and no interrupt shadow -> INTA (platform.acknowledge) and delivery through the guest
  IDT (x86_delivery), then resume at the handler.
- IF=0 -> resume with the switch *watching*: a small block hook reads EFLAGS and stops
  before the first block that starts with IF=1. Instructions that set IF (sti, popf, iret,
  sysret) end QEMU's translation block, so that block start is the first instant the
  interrupt can be taken. The hook is Python (about 2 us a block) and runs only while an
  interrupt waits for IF.
- The STI / MOV SS shadow: QEMU keeps it as HF_INHIBIT_IRQ in hflags and translates the
  instruction after STI or MOV SS as a block of its own. Inside a shadow we resume with a
  hook that lets that one-instruction block run and stops before the next, then deliver. So
  `sti; hlt` with an interrupt already pending executes the HLT and the handler returns after
  it, as on hardware, instead of the interrupt being taken before the HLT (a lost wake-up).
- HLT with IF=1: the vCPU is halted (a later run() stays halted until an interrupt). The
  loop sleeps on a lock (Wakeup) released by irq lines that raise INTR and by stop requests,
  with a timeout at the next timer deadline or the run's. No thread spins. HLT with IF=0
  ends the run with HALT.
"""
import threading
import time

from ..arch.x86.cpu_state import RFLAGS_IF
from ..layout import PAGE_SIZE
from ..records import replace
from .base import ENGINE_ERROR, HALT, PAUSED, SHUTDOWN, TIMEOUT, Engine, Outcome, deadline_after
from .host_timers import Wakeup, make_watchdog

TICK = 0.05                 # seconds: the longest emu_start, so that signals get handled


class UnicornEngine(Engine):
    name = "unicorn"
    snapshot_module = "unicorn_snapshot"
    _measured_tsc_khz = None

    @classmethod
    def probe(cls) -> str | None:
        try:
            from . import unicorn_lib
        except (ImportError, OSError) as exc:
            return f"the unicorn package's library cannot be loaded ({exc})"
        major, minor = unicorn_lib.version()
        if major != unicorn_lib.UC_API_MAJOR:
            return f"unicorn {major}.{minor} is installed; the unicorn engine needs unicorn 2.x"
        from . import unicorn_layout
        try:
            unicorn_layout.layout()
        except unicorn_layout.Unsupported as exc:
            return str(exc)
        return None

    @classmethod
    def tsc_khz(cls) -> int:
        """The guest's TSC rate. RDTSC reads the guest clock (guest_clock.py) at this rate,
        which is the host TSC's, measured against the monotonic clock (two reads 20 ms apart)
        and rounded to whole MHz, so that a guest sees the TSC it would see on KVM; measured
        once per host boot (vmm/host/facts.py), as the rate cannot change before the next."""
        if cls._measured_tsc_khz is None:
            from ..host.facts import boot_id, remembered
            boot = boot_id()
            cls._measured_tsc_khz = (int(remembered(f"tsc-khz boot={boot}", lambda: str(_measure_tsc_khz())))
                                     if boot else _measure_tsc_khz())
        return cls._measured_tsc_khz

    def __init__(self, memory, ports, mmio, control, cpuid):
        super().__init__(memory, ports, mmio, control, cpuid)
        from . import unicorn_binding as binding
        from . import unicorn_lib as x
        from .unicorn_lib import UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ, Uc, UcError
        from .unicorn_layout import layout
        from .guest_clock import GuestClock
        from .pc_platform import PcPlatform
        from .unicorn_code_cache import CodeCache
        from .unicorn_exits import ExitHooks, RunEnd
        from .x86_delivery import InterruptDelivery
        self._uc = self._switch = self._watchdog = self._debug = None
        self._wake = Wakeup()
        # The PC's interrupt controllers and timers, on the guest's buses (first: a clash
        # fails here, before any unicorn resources exist), on the guest clock.
        self.clock = GuestClock(tsc_hz=self.tsc_khz() * 1000)
        self.platform = PcPlatform(ports, mmio, self.clock, on_intr=self._on_intr)
        lay = layout()
        # Always a 64-bit engine: the state loader puts it into real, protected or long mode.
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # The CPU model must be chosen before memory is mapped. Haswell implements every
        # feature our CPUID table advertises (SSSE3/SSE4.x/POPCNT, which QEMU64 lacks); the
        # table hides PCID/INVPCID, which made Linux panic on unicorn (shared notes).
        uc.ctl_set_cpu_model(x.UC_CPU_X86_HASWELL)
        # RAM and the firmware ROMs share their host memory with the device models.
        for gpa, size, host_address, read_only in memory.regions():
            uc.mem_map_ptr(gpa, size, UC_PROT_READ | UC_PROT_EXEC if read_only else UC_PROT_ALL,
                           host_address)
        binding.no_exit_address(uc)         # runs end by the stop switch or HLT, never at an address
        self._uc = uc
        self._uc_error = UcError
        self._hs = binding.HiddenState(uc, lay)
        self._switch = binding.StopSwitch(uc, lay)
        self._regs = binding.FastRegisters(uc)
        self._reg_rip, self._reg_eflags = x.UC_X86_REG_RIP, x.UC_X86_REG_EFLAGS
        self._run_end = RunEnd(self._switch)
        self._hooks = binding.RawHooks(uc, on_error=self._run_end.fail)
        self.code_cache = CodeCache(uc, memory, self._hs, self._switch)
        self._delivery = InterruptDelivery(uc, memory, self._hs, self._regs, self.code_cache)
        self._exits = ExitHooks(uc, self._hooks, memory, ports, mmio, control, cpuid, self._delivery,
                                self.code_cache, self._run_end, self.clock)
        self._wait_for_if, self._step_shadow = self._window_hooks()
        self._rip = 0
        self._halted = False                # in HLT with IF=1, waiting for an interrupt
        self._hlt_seen_at = None            # RIP after the last HLT _after_hlt() checked
        self.n_hlt = self.n_slices = self.n_irqs = self.n_skips = 0
        # The debugger's single step (unicorn_debug.py): interrupts wait until it is done, as
        # with KVM_GUESTDBG_BLOCKIRQ, unless the CPU is halted (it would never wake).
        self.irqs_held = False
        control.kick = self._kick
        memory.on_write(self.code_cache.on_host_write)

    # --- state ------------------------------------------------------------------------------------
    def set_state(self, state) -> None:
        from .unicorn_state import load_state
        load_state(self._uc, self._hs, state)
        self._rip = state.rip
        self._halted = False

    def get_state(self):
        from .unicorn_state import read_state
        return read_state(self._uc, self._hs)

    def debug(self):
        """The debug interface (code hooks: breakpoints, stepping, tracing)."""
        if self._debug is None:
            from .unicorn_debug import UnicornDebug
            self._debug = UnicornDebug(self)
        return self._debug

    def inject_interrupt(self, vector: int, _saved: bool = False) -> None:
        """Deliver external interrupt `vector` through the guest IDT now, between runs (the
        run loop does this for the PIC; the caller checks RFLAGS.IF). If the delivery
        shuts the CPU down, the next run() says so."""
        detail = self._delivery.deliver_interrupt(vector, saved=_saved)
        self._rip = self._regs.read(self._reg_rip)
        self._halted = False
        self.n_irqs += 1
        if detail:
            self._run_end.outcome = Outcome(SHUTDOWN, rip=self._rip, detail=detail)

    def irq_line(self, gsi: int):
        """The platform's interrupt input `gsi` (PIC input and IOAPIC pin for 0-15, IOAPIC
        pin for 16-23) as a callable `line(level)`; any thread."""
        return self.platform.line(gsi)

    def leave_lint0_masked(self) -> None:
        self.platform.mask_lint0()

    def skip_idle_time(self, enabled: bool) -> None:
        self.clock.skip_idle = enabled

    # --- running ------------------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> Outcome:
        deadline = deadline_after(timeout)
        self.code_cache.vcpu_thread = threading.get_ident()
        if self._watchdog is None:
            self._watchdog = make_watchdog(self._switch.arm)
        platform = self.platform
        while True:
            # 1. Timers and interrupts: the platform's timers up to now, then delivery if
            #    INTR is up and the CPU can take it. (A raise of INTR throws the switch.)
            intr, timer_ns = platform.update()
            held = self.irqs_held and not self._halted
            watch = self._deliver_interrupts() if intr and not held else None
            # 2. The switch for the next slice: plain, or watching for the interrupt window.
            #    A stop requested from here on throws it again and ends that slice at once.
            if watch is None:
                self._switch.disarm()
            else:
                self._switch.watch(watch)
            # 3. Every reason to stop now.
            outcome = self._reason_to_stop(deadline, timeout)
            if outcome is not None:
                return outcome
            if watch is None and platform.intr and not held:
                continue                    # INTR rose since update(): deliver it first
            # 4. Halted (HLT with IF=1): sleep until an interrupt, a stop request or a deadline.
            if self._halted:
                self._sleep_in_hlt(deadline, timer_ns)
                continue
            # 5. Guest code, until the switch is thrown or the guest executes HLT.
            error = self._run_slice(deadline, timer_ns)
            # 6. Why the slice ended: a callback's verdict, an error, our switch, or HLT.
            outcome = self._after_slice(error)
            if outcome is not None:
                return outcome

    def _deliver_interrupts(self):
        """INTR is up: deliver the interrupt if the CPU can take it now, and as long as it
        can (a trap gate leaves IF set); then None, or the block hook that waits for the
        window while INTR stays up: for IF=1, or past the one instruction of an STI /
        MOV SS shadow."""
        from .unicorn_layout import HF_INHIBIT_IRQ
        platform, control, run_end = self.platform, self.control, self._run_end
        while platform.intr and run_end.outcome is None and control.stop is None:
            if not self._regs.read(self._reg_eflags) & RFLAGS_IF:
                return self._wait_for_if
            hs = self._hs
            hs.save()
            if hs.hflags & HF_INHIBIT_IRQ:
                return self._step_shadow
            self.inject_interrupt(platform.acknowledge(), _saved=True)
        return None

    def _reason_to_stop(self, deadline, timeout):
        """The Outcome that ends the run now: a callback's verdict, a stop request, the
        timeout; else None."""
        if self._run_end.outcome is not None:
            return self._run_end.outcome
        if self.control.stop is not None:
            return self._stop_outcome()
        if self.control.pause_requested:
            return Outcome(PAUSED, rip=self._rip, detail=f"paused at rip={self._rip:#x}")
        if deadline is not None and time.monotonic() >= deadline:
            state = "timed out in hlt (interrupts enabled)" if self._halted else "still running"
            return Outcome(TIMEOUT, rip=self._rip, detail=f"{state} after {timeout:g} s, at rip={self._rip:#x}")
        return None

    def _sleep_in_hlt(self, deadline, timer_ns):
        """Halted with IF=1: skip the guest clock to the next timer deadline if it is near
        (guest_clock.py), else sleep until an irq line raises INTR, a stop request, the next
        timer deadline or the run's, whichever comes first."""
        wake = self._wake
        wake.clear()
        # Look again after clear(): a raise or a stop request from now on sets `wake`.
        if self.platform.intr or self.control.stop is not None or self._run_end.outcome is not None:
            return
        if timer_ns is not None and self.clock.skip_to(timer_ns):
            self.n_skips += 1
            return
        until = deadline
        if timer_ns is not None:
            timer_at = self.clock.host_ns(timer_ns) / 1e9
            if until is None or timer_at < until:
                until = timer_at
        if until is None:
            wake.wait()
        else:
            remaining = until - time.monotonic()
            if remaining > 0:
                wake.wait(remaining)

    def _run_slice(self, deadline, timer_ns):
        """emu_start from RIP until the switch stops it or HLT, with the watchdog set for the
        earliest of TICK, the run's deadline and the next timer deadline. Returns the
        UcError that ended it, or None."""
        self.code_cache.catch_up()
        wake_at = time.monotonic() + TICK
        if deadline is not None and deadline < wake_at:
            wake_at = deadline
        if timer_ns is not None:
            timer_at = self.clock.host_ns(timer_ns) / 1e9
            if timer_at < wake_at:
                wake_at = timer_at
        self._watchdog.fire_at(wake_at)
        error = None
        self.code_cache.running = True
        try:
            self._uc.emu_start(self._rip, 0)
        except self._uc_error as exc:
            error = exc
        finally:
            self.code_cache.running = False
            self._watchdog.cancel()
        self.n_slices += 1
        self._rip = self._regs.read(self._reg_rip)
        return error

    def _after_slice(self, error):
        """The Outcome that ends the run after this slice, or None to go on."""
        run_end = self._run_end
        if run_end.error is not None:
            exc, run_end.error = run_end.error, None
            raise exc
        if run_end.outcome is not None:
            return run_end.outcome
        if error is not None:
            return self._engine_error(error)
        if self._switch.stopped_run():
            return None                     # thrown by us: the loop head says why
        # The run ended by itself: the guest executed HLT.
        if self._rip != self._hlt_seen_at and not self._after_hlt():
            return Outcome(ENGINE_ERROR, rip=self._rip,
                           detail=f"unicorn stopped for no known reason at rip={self._rip:#x}")
        self.n_hlt += 1
        if self._regs.read(self._reg_eflags) & RFLAGS_IF:
            self._halted = True             # until an interrupt comes: the loop head sleeps
        elif self.control.stop is None:     # (a stop requested in the HLT's block comes first)
            return Outcome(HALT, rip=self._rip, detail=f"hlt with interrupts disabled at rip={self._rip - 1:#x}")
        return None

    def _after_hlt(self) -> bool:
        """Is the byte before RIP an HLT opcode? (A sanity check: unicorn said the run was
        not stopped, and HLT is the only other way it ends without an error.)"""
        from .unicorn_layout import R_CS
        from .x86_delivery import CannotDeliver, DeliveryFault
        try:
            self._hs.save()
            cs_base = self._hs.seg(R_CS)[1]
            if self._delivery.read_linear(cs_base + self._rip - 1, 1) != 0xF4:
                return False
        except (DeliveryFault, CannotDeliver):
            return False
        self._hlt_seen_at = self._rip           # an idle loop's HLT: checked once
        return True

    def _stop_outcome(self) -> Outcome:
        stop = self.control.stop
        if stop.rip is None:
            stop = replace(stop, rip=self._rip)
        if not stop.detail:
            stop = replace(stop, detail=f"{stop.reason} at rip={stop.rip:#x}")
        return stop

    def _engine_error(self, error) -> Outcome:
        detail = f"unicorn error: {error} at rip={self._rip:#x}"
        if self._run_end.fault_note is not None:
            detail += f" ({self._run_end.fault_note})"
            self._run_end.fault_note = None
        return Outcome(ENGINE_ERROR, rip=self._rip, detail=detail)

    # --- stop requests and interrupt windows --------------------------------------------------------
    def _kick(self):
        """control.kick: stop before the next translated block (any thread, any callback)."""
        self._run_end.stop_soon()
        self._wake.set()

    def _on_intr(self, level: bool):
        """The CPU's INTR changed (called with the platform lock held, from the thread that
        drove the line or from the guest's own port access): stop before the next block or
        end a HLT sleep, so that the loop head can deliver."""
        if level:
            self._run_end.stop_soon()
            self._wake.set()

    def _window_hooks(self):
        """The two block callbacks StopSwitch.watch() takes while an interrupt waits (see
        Interrupts in the module docstring); they run on the vCPU thread, at block starts."""
        switch, read_reg, reg_eflags, fail = self._switch, self._regs.read, self._reg_eflags, self._run_end.fail

        def wait_for_if(_uc, _address, _size, _ud):
            """Stop before the first block that starts with IF=1."""
            try:
                if read_reg(reg_eflags) & RFLAGS_IF:
                    switch.stop_now()
            except BaseException as exc:
                fail(exc)

        def step_shadow(_uc, _address, _size, _ud):
            """Let this block (the one instruction in the shadow) run; stop before the next."""
            switch.arm()

        return self._hooks.block_callback(wait_for_if), self._hooks.block_callback(step_shadow)

    # --- statistics and teardown ------------------------------------------------------------------------
    def exit_counts(self) -> dict:
        exits = self._exits.counts()
        counts = {"pio-in": exits["pio-in"], "pio-out": exits["pio-out"], "mmio-read": exits["mmio-read"],
                  "mmio-write": exits["mmio-write"], "hlt": self.n_hlt, "exception": exits["exception"],
                  "syscall": exits["syscall"], "irq": self.n_irqs, "slice": self.n_slices,
                  "clock-skip": self.n_skips}
        return {name: count for name, count in counts.items() if count}

    def close(self) -> None:
        from .unicorn_binding import close_uc
        uc, self._uc = self._uc, None
        if uc is None:
            return
        if self.control.kick == self._kick:
            self.control.kick = None
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        self.memory.remove_write_listener(self.code_cache.on_host_write)
        self.code_cache.close()
        self._run_end.close()
        self._switch = None
        close_uc(uc)                        # uc_close now; the hooks go with it
        del uc
        self._hooks.release()               # only now can ctypes free the callbacks


def _measure_tsc_khz() -> int:
    from .unicorn_lib import UC_ARCH_X86, UC_MODE_64, UC_X86_REG_RAX, UC_X86_REG_RDX, Uc
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, PAGE_SIZE)
    uc.mem_write(0, b"\x0f\x31")                        # rdtsc

    def sample():
        before = time.monotonic_ns()
        uc.emu_start(0, 2)
        after = time.monotonic_ns()
        tsc = (uc.reg_read(UC_X86_REG_RDX) << 32) | (uc.reg_read(UC_X86_REG_RAX) & 0xFFFF_FFFF)
        return (before + after) / 2, tsc

    try:
        sample()                                        # translate the block first
        t0, tsc0 = sample()
        time.sleep(0.02)
        t1, tsc1 = sample()
    finally:
        uc.close()
    khz = (tsc1 - tsc0) * 1e6 / (t1 - t0)               # ticks per millisecond
    return max(1000, round(khz / 1000) * 1000)
