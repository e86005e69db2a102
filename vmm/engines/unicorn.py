"""The software CPU engine: unicorn 2.1.4 (QEMU's TCG) runs the vCPU inside this process.

Data path: run() calls emu_start; port I/O, MMIO, CPUID, exceptions and `syscall` arrive as
unicorn callbacks and go to the buses, the CPUID table and the x86 workarounds
(unicorn_x86.py). emu_start returns on HLT or when the stop switch is thrown; run() then
looks at why: a requested stop, the timeout, host writes to catch up with, or HLT.

Stopping. unicorn's own stops (timeout=, emu_stop) land in the middle of an instruction, and
a resumed run repeats it (shared notes, WARNING); count= is exact but makes guest code 5-12x
slower. We stop with the StopSwitch instead: before the next translated block starts, so the
CPU state is exact and a resumed run repeats nothing, at the cost of two C calls per block.
- control.kick (a device asked for a stop) throws the switch; the rest of the current block
  still runs, but every port or MMIO access it makes is dropped (KVM would never have run
  those instructions), so the outcome's RIP is the end of that block, not the instruction
  after the access.
- A watchdog thread throws it at the timeout, and every TICK seconds so that the Python
  main thread gets to handle signals (Ctrl-C) even while the guest computes without exits.
- Host writes into guest RAM made while the guest runs (DMA from a device callback) throw
  it, and the translated code is dropped before the guest continues.
"""
import dataclasses
import sys
import threading
import time
import weakref

from ..errors import VmmError
from . import unicorn_x86
from .base import (ENGINE_ERROR, HALT, SHUTDOWN, TIMEOUT, Engine, Outcome, deadline_after)

TICK = 0.05                 # seconds: the longest emu_start, so that signals get handled
MAX_PENDING_RANGES = 64     # host writes remembered during a run before flushing all code
DEMAND_PAGE_LIMIT = 16_384  # unclaimed MMIO pages mapped on first touch before we give up
PAGE = 0x1000
ALL_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}
RFLAGS_IF = 1 << 9


class UnicornEngine(Engine):
    name = "unicorn"
    _measured_tsc_khz = None

    @classmethod
    def probe(cls) -> str | None:
        try:
            import unicorn
        except ImportError as exc:
            return f"the unicorn Python package is not installed ({exc})"
        version = getattr(unicorn, "__version__", "0")
        if not version.startswith("2."):
            return f"unicorn {version} is installed; the unicorn engine needs unicorn 2.x"
        try:
            unicorn_x86.layout()
        except unicorn_x86.Unsupported as exc:
            return str(exc)
        return None

    @classmethod
    def tsc_khz(cls) -> int:
        """unicorn's RDTSC reads the host's TSC; measure its rate once against the monotonic
        clock (two reads 20 ms apart) and round it to whole MHz."""
        if cls._measured_tsc_khz is None:
            cls._measured_tsc_khz = _measure_tsc_khz()
        return cls._measured_tsc_khz

    def __init__(self, memory, ports, mmio, control, cpuid):
        super().__init__(memory, ports, mmio, control, cpuid)
        from unicorn import Uc, UC_ARCH_X86, UC_MODE_64, UC_PROT_ALL, UC_PROT_EXEC, UC_PROT_READ
        from unicorn.x86_const import UC_CPU_X86_HASWELL
        self._uc = None
        self._callbacks = []                # ctypes callbacks: alive as long as the Uc is
        self._windows = 0                   # MMIO windows mapped on demand
        lay = unicorn_x86.layout()
        # Always a 64-bit engine: the state loader puts it into real, protected or long mode.
        uc = Uc(UC_ARCH_X86, UC_MODE_64)
        # The CPU model must be chosen before memory is mapped. Haswell implements every
        # feature our CPUID table advertises (SSSE3/SSE4.x/POPCNT, which QEMU64 lacks); the
        # table hides PCID/INVPCID, which made Linux panic on unicorn (shared notes).
        uc.ctl_set_cpu_model(UC_CPU_X86_HASWELL)
        # RAM and the firmware ROMs share their host memory with the device models.
        for gpa, size, host_address, read_only in memory.regions():
            uc.mem_map_ptr(gpa, size, UC_PROT_READ | UC_PROT_EXEC if read_only else UC_PROT_ALL,
                           host_address)
        unicorn_x86.no_exit_address(uc)     # runs end by the stop switch or HLT, never at an address
        self._uc = uc
        self._sys = unicorn_x86.X86System(uc, memory, lay)
        self._switch = self._sys.switch
        self._rip = 0
        self._running = False
        self._flush_pending = False
        self._pending_ranges = []           # host writes made while the guest ran
        self._fatal = None                  # an Outcome decided inside a callback
        self._hook_error = None             # a Python exception raised by a device model
        self._fault_note = None             # what an access that unicorn refused was
        self._wake = threading.Event()
        self._watchdog = None
        self.n_pio_in = self.n_pio_out = self.n_mmio_read = self.n_mmio_write = 0
        self.n_hlt = self.n_exceptions = self.n_syscalls = self.n_slices = 0
        self._install_hooks()
        self._map_mmio_ranges()
        control.kick = self._kick
        memory.on_write(self._on_host_write)

    # --- state ----------------------------------------------------------------------------------
    def set_state(self, state) -> None:
        self._sys.load_state(state)
        self._rip = state.rip

    def get_state(self):
        return self._sys.read_state()

    def inject_interrupt(self, vector: int) -> None:
        """Deliver external interrupt `vector` through the guest IDT now, between runs (for
        the interrupt controller models; the caller checks RFLAGS.IF). If the delivery
        shuts the CPU down, the next run() says so."""
        detail = self._sys.deliver_interrupt(vector)
        self._rip = self._uc.reg_read(self._reg_rip)
        if detail:
            self._fatal = Outcome(SHUTDOWN, rip=self._rip, detail=detail)
        if self._sys.flush_needed:
            self._flush_pending = True

    # --- running --------------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> Outcome:
        from unicorn import UcError
        deadline = deadline_after(timeout)
        uc, switch, control = self._uc, self._switch, self.control
        if self._watchdog is None:
            self._watchdog = _Watchdog(switch.arm)
        while True:
            # Disarm first, then look at every reason to stop: a request made after this
            # point throws the switch again and ends the next run at once.
            switch.disarm()
            if self._fatal is not None:
                return self._fatal
            if control.stop is not None:
                return self._stop_outcome()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                return Outcome(TIMEOUT, rip=self._rip,
                               detail=f"still running after {timeout:g} s, at rip={self._rip:#x}")
            self._invalidate_pending()
            self._watchdog.fire_at(now + TICK if deadline is None else min(deadline, now + TICK))
            error = None
            self._running = True
            try:
                uc.emu_start(self._rip, 0)
            except UcError as exc:
                error = exc
            finally:
                self._running = False
                self._watchdog.cancel()
            self.n_slices += 1
            self._rip = uc.reg_read(self._reg_rip)
            if self._hook_error is not None:
                exc, self._hook_error = self._hook_error, None
                raise exc
            if self._fatal is not None:
                return self._fatal
            if error is not None:
                return self._engine_error(error)
            if switch.stopped_run() or control.stop is not None:
                continue                    # thrown by us (the loop head says why), or a
                                            # stop was requested in the block that ran HLT
            # The run ended by itself: the guest executed HLT.
            if not self._after_hlt():
                return Outcome(ENGINE_ERROR, rip=self._rip,
                               detail=f"unicorn stopped for no known reason at rip={self._rip:#x}")
            self.n_hlt += 1
            if not uc.reg_read(self._reg_rflags) & RFLAGS_IF:
                return Outcome(HALT, rip=self._rip,
                               detail=f"hlt with interrupts disabled at rip={self._rip - 1:#x}")
            # Interrupts are enabled, but nothing can raise one yet: wait for the deadline or
            # a stop request instead of spinning.
            self._wait_for_wakeup(deadline)

    def _wait_for_wakeup(self, deadline):
        self._wake.clear()
        if self.control.stop is not None:
            return
        self._wake.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def _after_hlt(self) -> bool:
        """Is the byte before RIP an HLT opcode? (A sanity check: unicorn said the run was
        not stopped, and HLT is the only other way it ends without an error.)"""
        try:
            self._sys.hs.save()
            cs_base = self._sys.hs.seg(unicorn_x86.R_CS)[1]
            return self._sys.read_linear(cs_base + self._rip - 1, 1) == 0xF4
        except (unicorn_x86.DeliveryFault, unicorn_x86.MachineCheck):
            return False

    def _stop_outcome(self) -> Outcome:
        stop = self.control.stop
        if stop.rip is None:
            stop = dataclasses.replace(stop, rip=self._rip)
        if not stop.detail:
            stop = dataclasses.replace(stop, detail=f"{stop.reason} at rip={stop.rip:#x}")
        return stop

    def _engine_error(self, error) -> Outcome:
        detail = f"unicorn error: {error} at rip={self._rip:#x}"
        if self._fault_note is not None:
            detail += f" ({self._fault_note})"
            self._fault_note = None
        return Outcome(ENGINE_ERROR, rip=self._rip, detail=detail)

    def _kick(self):
        """control.kick: stop before the next translated block (any thread, any callback)."""
        switch = self._switch
        if switch is not None:
            switch.arm()
        self._wake.set()

    def _fail(self, exc):
        if self._hook_error is None:
            self._hook_error = exc
        switch = self._switch
        if switch is not None:
            switch.arm()

    def _shutdown(self, detail):
        if self._fatal is None:
            self._fatal = Outcome(SHUTDOWN, rip=self._uc.reg_read(self._reg_rip), detail=detail)
        self._switch.arm()

    # --- callbacks ------------------------------------------------------------------------------
    def _install_hooks(self):
        import ctypes
        from unicorn import (UC_HOOK_INSN, UC_HOOK_INTR, UC_HOOK_INSN_INVALID,
                             UC_HOOK_MEM_READ_UNMAPPED, UC_HOOK_MEM_WRITE_UNMAPPED,
                             UC_HOOK_MEM_FETCH_UNMAPPED, UC_HOOK_MEM_WRITE_PROT,
                             UC_MEM_FETCH_UNMAPPED, UC_MEM_WRITE_PROT)
        from unicorn import x86_const as x
        b = unicorn_x86.binding()
        self._reg_rip, self._reg_rflags = x.UC_X86_REG_RIP, x.UC_X86_REG_RFLAGS
        uc, ports, control, switch, system = self._uc, self.ports, self.control, self._switch, self._sys

        def on_in(_uc, port, size, _ud):
            try:
                if control.stop is not None:
                    return ALL_ONES[size]
                self.n_pio_in += 1
                return ports.read(port, size)
            except BaseException as exc:
                self._fail(exc)
                return 0

        def on_out(_uc, port, size, value, _ud):
            try:
                if control.stop is not None:
                    return
                self.n_pio_out += 1
                ports.write(port, size, value)
            except BaseException as exc:
                self._fail(exc)

        reg_eax, reg_ecx = x.UC_X86_REG_EAX, x.UC_X86_REG_ECX
        out_regs = (x.UC_X86_REG_RAX, x.UC_X86_REG_RBX, x.UC_X86_REG_RCX, x.UC_X86_REG_RDX)
        lookup = self.cpuid.lookup

        def on_cpuid(_uc, _ud):
            try:
                answer = lookup(uc.reg_read(reg_eax), uc.reg_read(reg_ecx))
                for reg, value in zip(out_regs, answer):
                    uc.reg_write(reg, value)
            except BaseException as exc:
                self._fail(exc)
            return 1                            # skip unicorn's own CPUID

        def on_interrupt(_uc, vector, _ud):
            try:
                self.n_exceptions += 1
                if vector > 0xFF:
                    self._fatal = Outcome(ENGINE_ERROR, rip=uc.reg_read(self._reg_rip),
                                          detail=f"unicorn raised internal exception {vector:#x}")
                    switch.arm()
                    return
                detail = system.deliver_exception(vector)
                if detail:
                    self._shutdown(detail)
                elif system.flush_needed:
                    switch.arm()
            except BaseException as exc:
                self._fail(exc)

        def on_invalid(_uc, _ud):
            try:
                self.n_exceptions += 1
                detail = system.deliver_exception(unicorn_x86.UD)
                if detail:
                    self._shutdown(detail)
                elif system.flush_needed:
                    switch.arm()
            except BaseException as exc:
                self._fail(exc)
            return True

        def on_syscall(_uc, _ud):
            try:
                self.n_syscalls += 1
                detail = system.syscall()
                if detail:
                    self._shutdown(detail)
            except BaseException as exc:
                self._fail(exc)

        def on_unmapped(_uc, access, address, size, value, _ud):
            """An access outside RAM and outside every mapped window: it is MMIO nobody
            registered (or registered after we started). Map its page as a bus window and let
            the access retry; the bus answers all-ones and counts it, as on a PC.
            Fetches from there and writes into a ROM end the run with an engine error."""
            try:
                if access == UC_MEM_FETCH_UNMAPPED:
                    self._fault_note = f"instruction fetch from unmapped address {address:#x}"
                    return False
                if access == UC_MEM_WRITE_PROT:
                    self._fault_note = f"write of {size} bytes to read-only memory at {address:#x}"
                    return False
                if self._windows >= DEMAND_PAGE_LIMIT:
                    self._fatal = Outcome(ENGINE_ERROR, rip=uc.reg_read(self._reg_rip),
                                          detail=f"guest touched more than {DEMAND_PAGE_LIMIT} unmapped "
                                                 f"pages (last {address:#x})")
                    return False
                self._windows += 1
                self._map_bus_window(address & ~(PAGE - 1), PAGE)
                return True
            except BaseException as exc:
                self._fail(exc)
                return False

        hooks = [
            (UC_HOOK_INSN, b.HOOK_INSN_IN(on_in), (ctypes.c_int(x.UC_X86_INS_IN),)),
            (UC_HOOK_INSN, b.HOOK_INSN_OUT(on_out), (ctypes.c_int(x.UC_X86_INS_OUT),)),
            (UC_HOOK_INSN, b.HOOK_INSN_CPUID(on_cpuid), (ctypes.c_int(x.UC_X86_INS_CPUID),)),
            (UC_HOOK_INSN, b.HOOK_INSN_SYSCALL(on_syscall), (ctypes.c_int(x.UC_X86_INS_SYSCALL),)),
            (UC_HOOK_INTR, b.HOOK_INTR(on_interrupt), ()),
            (UC_HOOK_INSN_INVALID, b.HOOK_INSN_INVALID(on_invalid), ()),
            (UC_HOOK_MEM_READ_UNMAPPED | UC_HOOK_MEM_WRITE_UNMAPPED | UC_HOOK_MEM_FETCH_UNMAPPED
             | UC_HOOK_MEM_WRITE_PROT, b.HOOK_MEM_INVALID(on_unmapped), ()),
        ]
        for function in (on_in, on_out, on_cpuid, on_interrupt, on_invalid, on_syscall, on_unmapped):
            _own_callback(function, self)
        for htype, cfunc, extra in hooks:
            self._callbacks.append(cfunc)
            unicorn_x86.raw_hook(uc, htype, cfunc, 1, 0, *extra)

    def _map_mmio_ranges(self):
        """Map the pages of every registered MMIO range (merged, page-aligned) as windows
        onto the bus; the bus finds the device and answers for the gaps."""
        runs = []
        memory_regions = [(gpa, gpa + size) for gpa, size, _, _ in self.memory.regions()]
        for base, length, _device in sorted(self.mmio.ranges(), key=lambda r: r[0]):
            start, end = base & ~(PAGE - 1), (base + length + PAGE - 1) & ~(PAGE - 1)
            if any(start < region_end and region_start < end for region_start, region_end in memory_regions):
                raise VmmError(f"MMIO range {base:#x}+{length:#x} overlaps guest memory")
            if runs and start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end])
        for start, end in runs:
            self._map_bus_window(start, end - start)

    def _map_bus_window(self, start, size):
        b = unicorn_x86.binding()
        mmio, control = self.mmio, self.control

        def read(_uc, offset, size_, _ud):
            try:
                if control.stop is not None:
                    return ALL_ONES.get(size_, 0)
                self.n_mmio_read += 1
                return mmio.read(start + offset, size_)
            except BaseException as exc:
                self._fail(exc)
                return 0

        def write(_uc, offset, size_, value, _ud):
            try:
                if control.stop is not None:
                    return
                self.n_mmio_write += 1
                mmio.write(start + offset, size_, value)
            except BaseException as exc:
                self._fail(exc)

        _own_callback(read, self)
        _own_callback(write, self)
        read_cfunc, write_cfunc = b.MMIO_READ(read), b.MMIO_WRITE(write)
        self._callbacks += [read_cfunc, write_cfunc]
        unicorn_x86.raw_mmio_map(self._uc, start, size, read_cfunc, write_cfunc)

    def _on_host_write(self, gpa, length):
        """GuestMemory listener: the host (loader, DMA) changed guest RAM, which unicorn does
        not notice. Between runs, drop the translated code for the range now; while the guest
        runs (a device callback), stop before the next instruction and do it then, since the
        invalidation must not run inside translated code."""
        if self._uc is None or length <= 0 or self._flush_pending:
            return
        if self._running:
            if len(self._pending_ranges) < MAX_PENDING_RANGES:
                self._pending_ranges.append((gpa, length))
            else:
                self._flush_pending = True
            self._switch.arm()
        elif not self._sys.invalidate_code(gpa, length):
            self._flush_pending = True

    def _invalidate_pending(self):
        ranges, self._pending_ranges = self._pending_ranges, []
        if self._sys.flush_needed:
            self._sys.flush_needed = False
            self._flush_pending = True
        for gpa, length in ranges:
            if self._flush_pending:
                break
            if not self._sys.invalidate_code(gpa, length):
                self._flush_pending = True
        if self._flush_pending:
            self._flush_pending = False
            self._uc.ctl_flush_tb()

    # --- statistics and teardown -----------------------------------------------------------------
    def exit_counts(self) -> dict:
        counts = {"pio-in": self.n_pio_in, "pio-out": self.n_pio_out,
                  "mmio-read": self.n_mmio_read, "mmio-write": self.n_mmio_write,
                  "hlt": self.n_hlt, "exception": self.n_exceptions, "syscall": self.n_syscalls,
                  "slice": self.n_slices}
        return {name: count for name, count in counts.items() if count}

    def close(self) -> None:
        uc, self._uc = self._uc, None
        if uc is None:
            return
        if self.control.kick == self._kick:
            self.control.kick = None
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None
        listeners = getattr(self.memory, "_write_listeners", None)
        if listeners is not None and self._on_host_write in listeners:
            listeners.remove(self._on_host_write)
        self._sys = self._switch = None
        finalizer = getattr(uc, "_Uc__finalizer", None)
        if finalizer is not None:
            finalizer()                     # uc_close now; the hooks go with it
        del uc
        self._callbacks.clear()             # only now can ctypes free the callbacks


# An exception raised at a callback's very first bytecode (a signal: Ctrl-C arrives there
# often, since guests that poll a port spend their time in callbacks) happens before its
# `try:` and ctypes only reports it to sys.unraisablehook. This hook gives it back to the
# engine that owns the callback, which stops and re-raises it from run().
_callback_owners = weakref.WeakKeyDictionary()     # Python callback -> weakref to its engine
_previous_unraisablehook = None


def _own_callback(function, engine):
    global _previous_unraisablehook
    if _previous_unraisablehook is None:
        _previous_unraisablehook = sys.unraisablehook
        sys.unraisablehook = _unraisable
    _callback_owners[function] = weakref.ref(engine)


def _unraisable(info):
    owner = _callback_owners.get(info.object)
    engine = owner() if owner is not None else None
    if engine is not None and info.exc_value is not None:
        engine._fail(info.exc_value)
    else:
        _previous_unraisablehook(info)


class _Watchdog:
    """A thread that calls `fire` (StopSwitch.arm) at a given time, unless cancelled."""

    def __init__(self, fire):
        self._fire = fire
        self._cond = threading.Condition()
        self._at = None
        self._closed = False
        threading.Thread(target=self._loop, name="unicorn-watchdog", daemon=True).start()

    def fire_at(self, when: float):
        with self._cond:
            self._at = when
            self._cond.notify()

    def cancel(self):
        with self._cond:
            self._at = None

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _loop(self):
        with self._cond:
            while not self._closed:
                if self._at is None:
                    self._cond.wait()
                    continue
                delay = self._at - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                else:
                    self._at = None
                    self._fire()


def _measure_tsc_khz() -> int:
    from unicorn import Uc, UC_ARCH_X86, UC_MODE_64
    from unicorn.x86_const import UC_X86_REG_RAX, UC_X86_REG_RDX
    uc = Uc(UC_ARCH_X86, UC_MODE_64)
    uc.mem_map(0, PAGE)
    uc.mem_write(0, b"\x0f\x31")                        # rdtsc

    def sample():
        before = time.monotonic_ns()
        uc.emu_start(0, 2)
        after = time.monotonic_ns()
        tsc = (uc.reg_read(UC_X86_REG_RDX) << 32) | (uc.reg_read(UC_X86_REG_RAX) & 0xFFFF_FFFF)
        return (before + after) / 2, tsc

    sample()                                            # translate the block first
    t0, tsc0 = sample()
    time.sleep(0.02)
    t1, tsc1 = sample()
    khz = (tsc1 - tsc0) * 1e6 / (t1 - t0)               # ticks per millisecond
    return max(1000, round(khz / 1000) * 1000)
