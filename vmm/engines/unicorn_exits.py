"""Where a VM exit goes on the software engine: unicorn's callbacks, during emu_start.

KVM returns from KVM_RUN on an exit; unicorn calls back in the middle of a run instead. Each
callback below is that exit's handler, and a stop it asks for (RunEnd, or a device's
control.request_stop) throws the stop switch so that the run ends before the next block:
  IN / OUT        -> ports.read / ports.write (the bus finds the device)
  MMIO window     -> mmio.read / mmio.write; every registered range is mapped as a window at
                     start, and a page nobody registered is mapped on first touch (the bus
                     answers all-ones and counts it, as on a PC)
  CPUID           -> the CPUID table (the same one KVM gets)
  exception, INT n, #UD -> delivery through the guest's IDT (x86_delivery.py)
  SYSCALL         -> emulated (x86_delivery.py)
Once a stop was requested (control.stop), the rest of the block still runs, but its port and
MMIO accesses are dropped: KVM would never have executed those instructions. These callbacks
are the hot path: nothing but local variables, one counter add and the bus call.
"""
from ..arch.x86.exceptions import UD
from ..arch.x86.io import ALL_ONES
from ..errors import VmmError
from ..layout import PAGE_SIZE
from ..outcome import ENGINE_ERROR, SHUTDOWN, Outcome

DEMAND_PAGE_LIMIT = 16_384  # unclaimed MMIO pages mapped on first touch before we give up


class RunEnd:
    """How the current run must end when a callback decided it: `outcome` (an Outcome),
    `error` (an exception from a device model, which run() re-raises) and `fault_note`
    (what an access unicorn refused was, for the engine error that follows)."""
    __slots__ = ("outcome", "error", "fault_note", "_switch")

    def __init__(self, switch):
        self.outcome = None
        self.error = None
        self.fault_note = None
        self._switch = switch

    def fail(self, exc) -> None:
        """Any thread: a device model raised; stop and let run() re-raise it."""
        if self.error is None:
            self.error = exc
        self.stop_soon()

    def shutdown(self, detail: str, rip: int) -> None:
        if self.outcome is None:
            self.outcome = Outcome(SHUTDOWN, rip=rip, detail=detail)
        self.stop_soon()

    def stop_soon(self) -> None:
        """Throw the stop switch (no-op once the engine is closed)."""
        switch = self._switch
        if switch is not None:
            switch.arm()

    def close(self) -> None:
        self._switch = None


class ExitHooks:
    """Installs the exit callbacks on one engine's Uc (through its RawHooks) and counts the
    exits they handle."""

    def __init__(self, uc, hooks, memory, ports, mmio, control, cpuid, delivery, code_cache, run_end, clock):
        from . import unicorn_lib as x
        self._uc, self._hooks, self._memory = uc, hooks, memory
        self._ports, self._mmio, self._control = ports, mmio, control
        self._run_end = run_end
        self._reg_rip = x.UC_X86_REG_RIP
        self.n_pio_in = self.n_pio_out = self.n_mmio_read = self.n_mmio_write = 0
        self.n_exceptions = self.n_syscalls = 0
        self._windows = 0                   # MMIO windows mapped on demand
        self._install_port_hooks()
        self._install_cpuid_hook(cpuid, x)
        self._install_tsc_hooks(clock, x)
        self._install_event_hooks(delivery, code_cache)
        self._map_mmio_ranges()
        self._hooks.invalid_memory(self._on_unmapped)

    def counts(self) -> dict:
        return {"pio-in": self.n_pio_in, "pio-out": self.n_pio_out, "mmio-read": self.n_mmio_read,
                "mmio-write": self.n_mmio_write, "exception": self.n_exceptions, "syscall": self.n_syscalls}

    # --- port I/O (the hot path) --------------------------------------------------------------------
    def _install_port_hooks(self):
        ports, control, fail = self._ports, self._control, self._run_end.fail

        def on_in(_uc, port, size, _ud):
            try:
                if control.stop is not None:
                    return ALL_ONES[size]
                self.n_pio_in += 1
                return ports.read(port, size)
            except BaseException as exc:
                fail(exc)
                return 0

        def on_out(_uc, port, size, value, _ud):
            try:
                if control.stop is not None:
                    return
                self.n_pio_out += 1
                ports.write(port, size, value)
            except BaseException as exc:
                fail(exc)

        self._hooks.insn("in", on_in)
        self._hooks.insn("out", on_out)

    # --- MMIO windows ------------------------------------------------------------------------------
    def _map_mmio_ranges(self):
        """Map the pages of every registered MMIO range (merged, page-aligned) as windows
        onto the bus; the bus finds the device and answers for the gaps."""
        runs = []
        memory_regions = [(gpa, gpa + size) for gpa, size, _, _ in self._memory.regions()]
        for base, length, _device in sorted(self._mmio.ranges(), key=lambda r: r[0]):
            start, end = base & ~(PAGE_SIZE - 1), (base + length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
            if any(start < region_end and region_start < end for region_start, region_end in memory_regions):
                raise VmmError(f"MMIO range {base:#x}+{length:#x} overlaps guest memory")
            if runs and start <= runs[-1][1]:
                runs[-1][1] = max(runs[-1][1], end)
            else:
                runs.append([start, end])
        for start, end in runs:
            self._map_bus_window(start, end - start)

    def _map_bus_window(self, start, size):
        mmio, control, fail = self._mmio, self._control, self._run_end.fail

        def read(_uc, offset, size_, _ud):
            try:
                if control.stop is not None:
                    return ALL_ONES.get(size_, 0)
                self.n_mmio_read += 1
                return mmio.read(start + offset, size_)
            except BaseException as exc:
                fail(exc)
                return 0

        def write(_uc, offset, size_, value, _ud):
            try:
                if control.stop is not None:
                    return
                self.n_mmio_write += 1
                mmio.write(start + offset, size_, value)
            except BaseException as exc:
                fail(exc)

        self._hooks.mmio(start, size, read, write)

    def _on_unmapped(self, _uc, access, address, size, value, _ud):
        """An access outside RAM and outside every mapped window: it is MMIO nobody
        registered (or registered after we started). Map its page as a bus window and let
        the access retry; the bus answers all-ones and counts it, as on a PC. Fetches from
        there and writes into a ROM end the run with an engine error."""
        from .unicorn_lib import UC_MEM_FETCH_UNMAPPED, UC_MEM_WRITE_PROT
        run_end = self._run_end
        try:
            if access == UC_MEM_FETCH_UNMAPPED:
                run_end.fault_note = f"instruction fetch from unmapped address {address:#x}"
                return False
            if access == UC_MEM_WRITE_PROT:
                run_end.fault_note = f"write of {size} bytes to read-only memory at {address:#x}"
                return False
            if self._windows >= DEMAND_PAGE_LIMIT:
                run_end.outcome = Outcome(ENGINE_ERROR, rip=self._uc.reg_read(self._reg_rip),
                                          detail=f"guest touched more than {DEMAND_PAGE_LIMIT} unmapped "
                                                 f"pages (last {address:#x})")
                return False
            self._windows += 1
            self._map_bus_window(address & ~(PAGE_SIZE - 1), PAGE_SIZE)
            return True
        except BaseException as exc:
            run_end.fail(exc)
            return False

    # --- CPUID --------------------------------------------------------------------------------------
    def _install_cpuid_hook(self, cpuid, x):
        uc, fail, lookup = self._uc, self._run_end.fail, cpuid.lookup
        reg_eax, reg_ecx = x.UC_X86_REG_EAX, x.UC_X86_REG_ECX
        out_regs = (x.UC_X86_REG_RAX, x.UC_X86_REG_RBX, x.UC_X86_REG_RCX, x.UC_X86_REG_RDX)

        def on_cpuid(_uc, _ud):
            try:
                answer = lookup(uc.reg_read(reg_eax), uc.reg_read(reg_ecx))
                for reg, value in zip(out_regs, answer):
                    uc.reg_write(reg, value)
            except BaseException as exc:
                fail(exc)
            return 1                            # skip unicorn's own CPUID

        self._hooks.insn("cpuid", on_cpuid)

    def _install_tsc_hooks(self, clock, x):
        """RDTSC and RDTSCP read the guest clock (guest_clock.py), which the run loop moves
        ahead over idle time; unicorn's own would read the host's TSC and disagree with the
        guest's timers. TSC_AUX (RDTSCP's ECX) is 0: one CPU."""
        uc, fail, tsc = self._uc, self._run_end.fail, clock.tsc
        reg_rax, reg_rdx, reg_rcx = x.UC_X86_REG_RAX, x.UC_X86_REG_RDX, x.UC_X86_REG_RCX

        def on_rdtsc(_uc, _ud):
            try:
                value = tsc()
                uc.reg_write(reg_rax, value & 0xFFFF_FFFF)
                uc.reg_write(reg_rdx, value >> 32 & 0xFFFF_FFFF)
            except BaseException as exc:
                fail(exc)
            return 1

        def on_rdtscp(_uc, _ud):
            uc.reg_write(reg_rcx, 0)
            return on_rdtsc(_uc, _ud)

        self._hooks.insn("rdtsc", on_rdtsc)
        self._hooks.insn("rdtscp", on_rdtscp)

    # --- exceptions, INT n and SYSCALL ----------------------------------------------------------------
    def _install_event_hooks(self, delivery, code_cache):
        uc, run_end, reg_rip = self._uc, self._run_end, self._reg_rip

        def delivered(detail):
            """After a delivery: shut down if it failed, else stop for a code flush if it
            wrote where translated code could not be dropped precisely."""
            if detail:
                run_end.shutdown(detail, uc.reg_read(reg_rip))
            elif code_cache.flush_pending:
                run_end.stop_soon()

        def on_interrupt(_uc, vector, _ud):
            try:
                self.n_exceptions += 1
                if vector > 0xFF:
                    run_end.outcome = Outcome(ENGINE_ERROR, rip=uc.reg_read(reg_rip),
                                              detail=f"unicorn raised internal exception {vector:#x}")
                    run_end.stop_soon()
                    return
                delivered(delivery.deliver_exception(vector))
            except BaseException as exc:
                run_end.fail(exc)

        def on_invalid(_uc, _ud):
            try:
                self.n_exceptions += 1
                delivered(delivery.deliver_exception(UD))
            except BaseException as exc:
                run_end.fail(exc)
            return True

        def on_syscall(_uc, _ud):
            try:
                self.n_syscalls += 1
                detail = delivery.syscall()
                if detail:
                    run_end.shutdown(detail, uc.reg_read(reg_rip))
            except BaseException as exc:
                run_end.fail(exc)

        self._hooks.insn("syscall", on_syscall)
        self._hooks.interrupt(on_interrupt)
        self._hooks.invalid_instruction(on_invalid)
