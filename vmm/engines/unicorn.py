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
- A watchdog throws it at the timeout, at the PIT's next deadline, and every TICK seconds
  so that the Python main thread gets to handle signals (Ctrl-C) even while the guest
  computes without exits. It is a timerfd and a thread blocked reading it: arming and
  cancelling are one system call each, and a run that ends first (an idle guest's HLT)
  never wakes the thread.
- Host writes into guest RAM made while the guest runs (DMA from a device callback) throw
  it, and the translated code is dropped before the guest continues.

Interrupts. KVM has the PC's interrupt platform in the kernel; this engine brings its own
(PcPlatform, below): the 8259A pair, the 8254 PIT and port 0x61, from vmm/devices, on the
port bus it is given, at the same ports, so a guest sees the same PC on both engines.
irq_line(gsi) drives a PIC input from any thread; one lock (PcPlatform.lock) serialises the
models between those threads and the guest's port accesses. Nothing ticks in the background:
- Timer. Before each emu_start the loop brings the PIT up to date (`update`: its IRQ 0 edges
  go to the PIC) and tells the watchdog to stop the run at the PIT's next deadline as well
  as at the timeout and TICK. Between runs the PIT needs no work; its counts are computed
  from the clock when read.
- Delivery. When the PIC's INTR output rises, the switch is thrown (from whatever thread
  raised it) and the run stops before the next block. At the loop head, with INTR up:
  IF=1 and no interrupt shadow -> INTA (`acknowledge`) and delivery through the guest IDT
  (unicorn_x86.X86System.deliver_interrupt), then resume at the handler. IF=0 -> resume with
  the switch *watching* (StopSwitch.watch): a small block hook reads EFLAGS and stops before
  the first block that starts with IF=1. Instructions that set IF (sti, popf, iret,
  sysret) end QEMU's translation block, so that block start is the first instant the
  interrupt can be taken. That hook is Python (about 2 us a block), and it runs only while
  an interrupt waits for IF: with the guest kernel, a few hundred blocks when a tick lands
  in kernel code, mostly at boot. Otherwise the per-block cost stays the two C calls above.
- The STI / MOV SS shadow: QEMU keeps it as HF_INHIBIT_IRQ in hflags and translates the
  instruction after STI or MOV SS as a block of its own. Before delivering we read hflags
  from the context blob; inside a shadow we resume with a hook that lets that one-
  instruction block run and stops before the next, then deliver. So `sti; hlt` with an
  interrupt already pending executes the HLT and the handler returns after it, as on
  hardware, instead of the interrupt being taken before the HLT (a lost wake-up).
- HLT with IF=1: the vCPU is halted (a later run() stays halted until an interrupt). The
  loop sleeps on a lock (`_Wakeup`) released by irq lines that raise INTR and by stop
  requests, with a timeout at the PIT's next deadline or the run's; then updates the PIT,
  delivers, and the handler returns after the HLT. No thread spins. HLT with IF=0 ends the
  run with HALT.
"""
import ctypes
import dataclasses
import os
import sys
import threading
import time
import weakref

from .. import layout
from ..devices.pic import DualPic
from ..devices.pit import Pit8254, SystemControlPortB
from ..errors import VmmError
from . import unicorn_x86
from .base import (ENGINE_ERROR, HALT, SHUTDOWN, TIMEOUT, Engine, Outcome, deadline_after)

TICK = 0.05                 # seconds: the longest emu_start, so that signals get handled
MAX_PENDING_RANGES = 64     # host writes remembered during a run before flushing all code
DEMAND_PAGE_LIMIT = 16_384  # unclaimed MMIO pages mapped on first touch before we give up
PAGE = 0x1000
ALL_ONES = {1: 0xFF, 2: 0xFFFF, 4: 0xFFFF_FFFF, 8: 0xFFFF_FFFF_FFFF_FFFF}
RFLAGS_IF = 1 << 9
NEVER_NS = 1 << 63          # a host time (ns) that never comes


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
        self._uc = self._switch = None
        self._callbacks = []                # ctypes callbacks: alive as long as the Uc is
        self._windows = 0                   # MMIO windows mapped on demand
        self._wake = _Wakeup()
        # The PC's interrupt controllers and timer, on the guest's port bus (first: a port
        # clash fails here, before any unicorn resources exist).
        self.platform = PcPlatform(ports, on_intr=self._on_intr)
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
        self._pending_lock = threading.Lock()   # device threads append, the vCPU thread takes
        self._vcpu_thread = None            # the thread in run(): only it may touch unicorn
        self._fatal = None                  # an Outcome decided inside a callback
        self._hook_error = None             # a Python exception raised by a device model
        self._fault_note = None             # what an access that unicorn refused was
        self._watchdog = None
        self._halted = False                # in HLT with IF=1, waiting for an interrupt
        self._hlt_seen_at = None            # RIP after the last HLT _after_hlt() checked
        self.n_pio_in = self.n_pio_out = self.n_mmio_read = self.n_mmio_write = 0
        self.n_hlt = self.n_exceptions = self.n_syscalls = self.n_slices = self.n_irqs = 0
        self._install_hooks()
        self._install_window_hooks()
        self._fast_reg = self._sys.regs.read
        self._map_mmio_ranges()
        control.kick = self._kick
        memory.on_write(self._on_host_write)

    # --- state ----------------------------------------------------------------------------------
    def set_state(self, state) -> None:
        self._sys.load_state(state)
        self._rip = state.rip
        self._halted = False

    def get_state(self):
        return self._sys.read_state()

    def debug_port(self):
        """Code hooks, exact stops and instruction fetches for tracing and the gdb stub."""
        from .unicorn_debug import UnicornDebugPort
        return UnicornDebugPort(self)

    def inject_interrupt(self, vector: int, _saved: bool = False) -> None:
        """Deliver external interrupt `vector` through the guest IDT now, between runs (the
        run loop does this for the PIC; the caller checks RFLAGS.IF). If the delivery
        shuts the CPU down, the next run() says so."""
        detail = self._sys.deliver_interrupt(vector, saved=_saved)
        self._rip = self._fast_reg(self._reg_rip)
        self._halted = False
        self.n_irqs += 1
        if detail:
            self._fatal = Outcome(SHUTDOWN, rip=self._rip, detail=detail)
        if self._sys.flush_needed:
            self._flush_pending = True

    def irq_line(self, gsi: int):
        """The platform's ISA IRQ `gsi` (a PIC input) as a callable `line(level)`; any thread."""
        return self.platform.line(gsi)

    # --- running --------------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> Outcome:
        from unicorn import UcError
        deadline = deadline_after(timeout)
        uc, switch, control, platform = self._uc, self._switch, self.control, self.platform
        read_reg, reg_rip, reg_eflags = self._fast_reg, self._reg_rip, self._reg_eflags
        self._vcpu_thread = threading.get_ident()
        if self._watchdog is None:
            self._watchdog = _watchdog(switch.arm)
        while True:
            # Timers and interrupts first: the PIT's edges up to now, and delivery if INTR
            # is up and the CPU can take it. (A raise of INTR throws the switch.)
            intr, timer_ns = platform.update()
            watch = self._interrupt_window() if intr else None
            # Then set the switch for the next run (plain, or watching for the interrupt
            # window) and look at every reason to stop: a request made after this point
            # throws the switch again and ends the next run at once.
            if watch is None:
                switch.disarm()
            else:
                switch.watch(watch)
            if self._fatal is not None:
                return self._fatal
            if control.stop is not None:
                return self._stop_outcome()
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                state = "timed out in hlt (interrupts enabled)" if self._halted else "still running"
                return Outcome(TIMEOUT, rip=self._rip,
                               detail=f"{state} after {timeout:g} s, at rip={self._rip:#x}")
            if watch is None and platform.intr:
                continue                    # INTR rose since update(): deliver it first
            if self._halted:
                self._sleep_in_hlt(deadline, timer_ns)
                continue
            self._invalidate_pending()
            wake_at = now + TICK
            if deadline is not None and deadline < wake_at:
                wake_at = deadline
            if timer_ns is not None and timer_ns / 1e9 < wake_at:
                wake_at = timer_ns / 1e9
            self._watchdog.fire_at(wake_at)
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
            self._rip = read_reg(reg_rip)
            if self._hook_error is not None:
                exc, self._hook_error = self._hook_error, None
                raise exc
            if self._fatal is not None:
                return self._fatal
            if error is not None:
                return self._engine_error(error)
            if switch.stopped_run():
                continue                    # thrown by us: the loop head says why
            # The run ended by itself: the guest executed HLT.
            if self._rip != self._hlt_seen_at and not self._after_hlt():
                return Outcome(ENGINE_ERROR, rip=self._rip,
                               detail=f"unicorn stopped for no known reason at rip={self._rip:#x}")
            self.n_hlt += 1
            if read_reg(reg_eflags) & RFLAGS_IF:
                self._halted = True         # until an interrupt comes: the loop head sleeps
            elif control.stop is None:      # (a stop requested in the HLT's block comes first)
                return Outcome(HALT, rip=self._rip,
                               detail=f"hlt with interrupts disabled at rip={self._rip - 1:#x}")

    def _interrupt_window(self):
        """INTR is up: deliver the interrupt if the CPU can take it now, and as long as it
        can (a trap gate leaves IF set); then None, or the block hook that waits for the
        window while INTR stays up: for IF=1, or past the one instruction of an STI /
        MOV SS shadow."""
        platform, control = self.platform, self.control
        while platform.intr and self._fatal is None and control.stop is None:
            if not self._fast_reg(self._reg_eflags) & RFLAGS_IF:
                return self._wait_for_if
            hs = self._sys.hs
            hs.save()
            if hs.hflags & unicorn_x86.HF_INHIBIT_IRQ:
                return self._step_shadow
            self.inject_interrupt(platform.acknowledge(), _saved=True)
        return None

    def _sleep_in_hlt(self, deadline, timer_ns):
        """Halted with IF=1: sleep until an irq line raises INTR, a stop request, the PIT's
        next deadline or the run's, whichever comes first."""
        wake = self._wake
        wake.clear()
        # Look again after clear(): a raise or a stop request from now on sets `wake`.
        if self.platform.intr or self.control.stop is not None or self._fatal is not None:
            return
        until = deadline
        if timer_ns is not None:
            timer_at = timer_ns / 1e9
            if until is None or timer_at < until:
                until = timer_at
        if until is None:
            wake.wait()
        else:
            remaining = until - time.monotonic()
            if remaining > 0:
                wake.wait(remaining)

    def _on_intr(self, level: bool):
        """The PIC's INTR output changed (called with the platform lock held, from the thread
        that drove the line or from the guest's own port access): stop before the next block
        or end a HLT sleep, so that the loop head can deliver."""
        if level:
            switch = self._switch
            if switch is not None:
                switch.arm()
            self._wake.set()

    def _after_hlt(self) -> bool:
        """Is the byte before RIP an HLT opcode? (A sanity check: unicorn said the run was
        not stopped, and HLT is the only other way it ends without an error.)"""
        try:
            self._sys.hs.save()
            cs_base = self._sys.hs.seg(unicorn_x86.R_CS)[1]
            if self._sys.read_linear(cs_base + self._rip - 1, 1) != 0xF4:
                return False
        except (unicorn_x86.DeliveryFault, unicorn_x86.MachineCheck):
            return False
        self._hlt_seen_at = self._rip           # an idle loop's HLT: checked once
        return True

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
        self._reg_rip, self._reg_rflags, self._reg_eflags = x.UC_X86_REG_RIP, x.UC_X86_REG_RFLAGS, x.UC_X86_REG_EFLAGS
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

    def _install_window_hooks(self):
        """The two block hooks StopSwitch.watch() installs while an interrupt waits (see
        Interrupts in the module docstring). They run on the vCPU thread, at block starts."""
        b = unicorn_x86.binding()
        from unicorn.x86_const import UC_X86_REG_EFLAGS
        uclib, switch = b.uclib, self._switch
        reg_read, emu_stop = uclib.uc_reg_read, uclib.uc_emu_stop
        eflags = ctypes.c_uint64()
        eflags_ref = ctypes.byref(eflags)

        def wait_for_if(uch, _address, _size, _ud):
            """Stop before the first block that starts with IF=1."""
            try:
                reg_read(uch, UC_X86_REG_EFLAGS, eflags_ref)
                if eflags.value & RFLAGS_IF:
                    emu_stop(uch)
            except BaseException as exc:
                self._fail(exc)

        def step_shadow(_uch, _address, _size, _ud):
            """Let this block (the one instruction in the shadow) run; stop before the next."""
            switch.arm()

        addresses = []
        for function in (wait_for_if, step_shadow):
            _own_callback(function, self)
            cfunc = b.HOOK_BLOCK(function)
            self._callbacks.append(cfunc)
            addresses.append(ctypes.cast(cfunc, ctypes.c_void_p).value)
        self._wait_for_if, self._step_shadow = addresses

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
        other_thread = self._vcpu_thread is not None and threading.get_ident() != self._vcpu_thread
        if self._running or other_thread:
            # Another thread (a device completing late) must not touch unicorn's state: the
            # vCPU thread may be delivering an interrupt with it right now. Queue the range.
            with self._pending_lock:
                if len(self._pending_ranges) < MAX_PENDING_RANGES:
                    self._pending_ranges.append((gpa, length))
                else:
                    self._flush_pending = True
            self._switch.arm()
        elif not self._sys.invalidate_code(gpa, length):
            self._flush_pending = True

    def _invalidate_pending(self):
        with self._pending_lock:
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
                  "irq": self.n_irqs, "slice": self.n_slices}
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


class _Wakeup:
    """A one-bit event for the HLT sleep: set() from any thread ends the current or next
    wait(). (threading.Event.wait builds a Condition waiter per call; this is one lock.)"""
    __slots__ = ("_lock",)

    def __init__(self):
        self._lock = threading.Lock()
        self._lock.acquire()                # held = not set

    def set(self):
        try:
            self._lock.release()
        except RuntimeError:                # already set
            pass

    def clear(self):
        self._lock.acquire(False)

    def wait(self, timeout=None):
        """Until set() or `timeout` seconds; consumes the set."""
        self._lock.acquire(True, -1 if timeout is None else timeout)


class PcPlatform:
    """The PC/AT interrupt platform for the software engine: the 8259A pair, the 8254 PIT
    (channel 0 on IRQ 0) and port 0x61, registered on `ports` at their layout.py ports.

    Threads: devices drive irq lines from any thread, the guest reaches the same models
    through port accesses on the vCPU thread, and the engine asks for INTR and acknowledges
    between runs. `lock` serialises all of it; `on_intr(level)` is called with it held and
    must not take it."""

    def __init__(self, ports, on_intr):
        self.lock = threading.Lock()
        self.pic = DualPic(on_intr=on_intr)
        self.pit = Pit8254(irq=self._timer_output)
        self.port_b = SystemControlPortB(self.pit)
        # Until this host time (ns) the PIT's IRQ 0 has nothing new to say, unless the guest
        # writes to the PIT: update() is then two comparisons.
        self._quiet_until = 0
        self._timer_ns = None
        self._pulsed = 0                # IRQs raised by pulse() and not yet acknowledged
        for base, count, device in ((layout.PIC_MASTER_PORT, layout.PIC_PORT_COUNT, self.pic.master),
                                    (layout.PIC_SLAVE_PORT, layout.PIC_PORT_COUNT, self.pic.slave)):
            ports.register(base, count, _Serialized(device, self.lock))
        for base, count, device in ((layout.PIT_PORT, layout.PIT_PORT_COUNT, self.pit),
                                    (layout.SYSTEM_CONTROL_PORT_B, 1, self.port_b)):
            ports.register(base, count, _TimerPort(device, self))

    def _timer_output(self, level: bool) -> None:
        self.pic.set_irq(layout.PIT_IRQ, level)     # (the PIT calls this with the lock held)

    def line(self, irq: int) -> "IrqLine":
        if not 0 <= irq < 16 or irq == layout.PIC_CASCADE_IRQ:
            raise VmmError(f"IRQ {irq} is not an input of the PIC pair (0-15, but not the cascade"
                           f" input {layout.PIC_CASCADE_IRQ})")
        return IrqLine(self, irq)

    def update(self):
        """Bring the PIT's IRQ 0 up to now: (INTR, the PIT's next deadline in host ns or None)."""
        now = time.monotonic_ns()
        if now < self._quiet_until:
            return self.pic.master.int_out, self._timer_ns
        with self.lock:
            self.pit.update(now)
            timer_ns = self._timer_ns = self.pit.next_deadline_ns()
            self._quiet_until = NEVER_NS if timer_ns is None else timer_ns
            return self.pic.pending(), timer_ns

    @property
    def intr(self) -> bool:
        """The CPU's INTR line now (one attribute read: no lock needed to look)."""
        return self.pic.master.int_out

    def acknowledge(self) -> int:
        """The INTA cycle: the vector to deliver (IR7's when the request vanished)."""
        with self.lock:
            vector = self.pic.acknowledge()
            if self._pulsed:
                self._end_pulses()
            return vector

    def pulse(self, irq: int) -> None:
        """An edge on `irq` that is held until the CPU takes it (see IrqLine.pulse)."""
        bit = 1 << irq
        with self.lock:
            if self._pulsed & bit:
                self.pic.set_irq(irq, False)        # still up from the last pulse: a new edge
            self.pic.set_irq(irq, True)
            self._pulsed |= bit

    def _end_pulses(self) -> None:
        """Lower the pulsed lines whose request the acknowledge took (an edge request leaves
        IRR at INTA); a masked one stays latched, as in KVM."""
        pic = self.pic
        for irq in range(16):
            bit = 1 << irq
            if self._pulsed & bit:
                chip, ir = (pic.master, irq) if irq < 8 else (pic.slave, irq - 8)
                if not chip.irr >> ir & 1:
                    self._pulsed &= ~bit
                    pic.set_irq(irq, False)

    def set_line(self, irq: int, level: bool) -> None:
        with self.lock:
            self._pulsed &= ~(1 << irq)
            self.pic.set_irq(irq, level)


class IrqLine:
    """One PIC input as a device's `irq(level)`, callable from any thread; the same shape as
    KVM's IrqLine. Devices drive levels (`line(True)` until serviced, then `line(False)`);
    on the 8259A, as on the chip, a request that falls before the CPU acknowledges it is
    withdrawn and the acknowledge yields the spurious IR7 vector.

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
        return f"IrqLine(irq={self.irq})"


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
    """The PIT's ports (and port 0x61): a write may reprogram channel 0, so the platform's
    next update() must ask the PIT again."""
    __slots__ = ("_platform",)

    def __init__(self, device, platform):
        super().__init__(device, platform.lock)
        self._platform = platform

    def write(self, offset, size, value):
        with self._lock:
            self._device.write(offset, size, value)
            self._platform._quiet_until = 0


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


def _watchdog(fire):
    """A watchdog that calls `fire` (StopSwitch.arm) at the time given to fire_at(), unless
    cancel() comes first: the timerfd one where the C library has timerfd (Linux), else one
    built on a condition variable."""
    try:
        return _TimerFdWatchdog(fire)
    except (OSError, AttributeError):
        return _ConditionWatchdog(fire)


class _TimespecPair(ctypes.Structure):
    """struct itimerspec: it_interval (left zero: one-shot), then it_value."""
    _fields_ = [("interval_sec", ctypes.c_long), ("interval_nsec", ctypes.c_long),
                ("value_sec", ctypes.c_long), ("value_nsec", ctypes.c_long)]


class _TimerFdWatchdog:
    """A CLOCK_MONOTONIC timerfd (the clock of time.monotonic) and a thread blocked in read()
    on it, without the GIL. Arming and cancelling are one timerfd_settime each: a run that
    ends before its deadline (an idle guest's: HLT comes first) never wakes the thread. The
    condition-variable watchdog needs two thread wake-ups per run for the same, which cost an
    idle guest at 1 kHz a fifth of its host CPU time. (timerfd_settime also drops an expiry
    the thread has not read yet, so a cancelled deadline does not fire late.)"""
    CLOCK_MONOTONIC, TFD_CLOEXEC, TFD_TIMER_ABSTIME = 1, 0o2000000, 1

    def __init__(self, fire):
        libc = ctypes.CDLL(None, use_errno=True)
        create, self._settime = libc.timerfd_create, libc.timerfd_settime
        create.argtypes, create.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        self._settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        self._settime.restype = ctypes.c_int
        fd = create(self.CLOCK_MONOTONIC, self.TFD_CLOEXEC)
        if fd < 0:
            raise OSError(ctypes.get_errno(), "timerfd_create")
        self._fd = fd
        self._spec, self._off = _TimespecPair(), _TimespecPair()
        self._spec_ref, self._off_ref = ctypes.byref(self._spec), ctypes.byref(self._off)
        self._fire = fire
        self._lock = threading.Lock()       # no fire() once close() has returned
        self._closed = False
        threading.Thread(target=self._loop, name="unicorn-watchdog", daemon=True).start()

    def fire_at(self, when: float):
        seconds = int(when)
        spec = self._spec
        spec.value_sec, spec.value_nsec = seconds, max(1, int((when - seconds) * 1e9))
        self._settime(self._fd, self.TFD_TIMER_ABSTIME, self._spec_ref, None)

    def cancel(self):
        self._settime(self._fd, 0, self._off_ref, None)

    def close(self):
        with self._lock:                    # (the thread closes the fd only after this)
            if not self._closed:
                self._closed = True
                self.fire_at(0.0)           # wake the thread: it closes the fd and ends

    def _loop(self):
        fd = self._fd
        while True:
            try:
                os.read(fd, 8)
            except InterruptedError:
                continue
            except OSError:
                return
            with self._lock:
                if self._closed:
                    break
                self._fire()
        os.close(fd)


class _ConditionWatchdog:
    """The portable watchdog: a thread waiting on a condition variable until the deadline."""

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
