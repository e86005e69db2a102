"""KvmEngine: the guest runs on /dev/kvm; this module is its VM-exit loop.

Everything KVM-specific (structs, ioctls, the kvm_run page) is in vmm/kvm; this module maps
the engine contract (engines/base.py) onto it:

- construction: a VM with guest RAM as memory slot 0, the TSS and identity-map pages from
  layout.py, KVM's in-kernel interrupt controllers (8259A pair, IOAPIC, local APIC) and
  8254 PIT, one vCPU with our CPUID table (restricted to what KVM supports), the boot MSRs
  and a reset FPU (kvm_setup.py);
- irq_line(gsi): what the machine hands a device as its interrupt output (KVM_IRQ_LINE);
- set_state/get_state: CpuState <-> kvm_regs + kvm_sregs (kvm_state.py);
- run(): KVM_RUN until an exit that ends the run (_loop). Port I/O goes to `ports`, MMIO
  to `mmio`, and after every I/O exit `control.stop` is checked;
- debug(): the debug interface (kvm_debug.py), the engine's debug hook while in use.

Timeouts and stop requests from other threads kick the vCPU (vmm/kvm/kick.py): a watchdog
thread sets kvm_run.immediate_exit and signals the vCPU thread, so KVM_RUN returns EINTR
even while the guest spins without exiting.

HLT. With the in-kernel irqchip, KVM keeps HLT to itself: the vCPU sleeps inside KVM_RUN
until an interrupt (the PIT's, or one a device raised) wakes it, at no cost to us. A HLT
with interrupts off never wakes, and ends the run with HALT (the guest powered off); no
exit tells us of it, so the watchdog polls kvm_halt.HaltWatch (the vCPU's KVM statistics
`blocking` and `halt_exits`, a pread) and kicks a vCPU that sat in the same HLT for a whole
interval, once; the EINTR path then reads the MP state and RFLAGS.IF. A busy guest, or one
woken by timer ticks, is never kicked. (An NMI could wake such a HLT; the VMM raises none,
and a guest that routes the PIT or an IOAPIC pin to NMI is not supported.)

Threads: the engine may run in any thread, but the kick signal needs a Python handler,
which only the main thread can install. An engine created in the main thread installs it
(and the last one closed there restores the previous disposition); creating one in another
thread while no handler is installed raises VmmError: call vmm.kvm.install_kick_handler()
from the main thread first (that pins the handler for the life of the process).

Ctrl-C: SIGINT during run() in the main thread ends the run with Outcome(INTERRUPTED); the
KeyboardInterrupt does not propagate. When run() is in another thread, SIGINT reaches the
main thread, which should call control.request_stop(Outcome(INTERRUPTED)).
"""
import errno
import threading
import time

from ..arch.x86.cpu_state import RFLAGS_IF, CpuState
from ..arch.x86.cpuid import CpuidTable
from ..errors import AcceleratorUnavailable, VmmError
from ..kvm import KvmError
from ..kvm import constants as kc
from ..kvm.ioctl import get_errno, raw_ioctl
from ..kvm.kick import Watchdog, acquire_kick_handler, release_kick_handler
from ..kvm.ioctl_numbers import KVM_RUN
from ..kvm.vcpu import (EXIT_REASON_U32, IMMEDIATE_EXIT_OFFSET, IO_COUNT_U32, IO_DATA_OFFSET_U64, IO_DIRECTION_U8,
                        IO_PORT_U16, IO_SIZE_U8, MMIO_ADDR_U64, MMIO_DATA_U8, MMIO_DATA_U64, MMIO_IS_WRITE_U8,
                        MMIO_LEN_U32)
from ..kvm.structs import KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KvmRun
from . import kvm_features, kvm_setup, kvm_state
from .base import (EMULATION_FAILURE, ENTRY_FAILURE, HALT, INTERNAL_ERROR, INTERRUPTED, PAUSED, SHUTDOWN,
                   SYSTEM_EVENT, TIMEOUT, Engine, Outcome, RunControl, deadline_after)
from .kvm_halt import HaltWatch

# Value masks by access size in bytes (index 0..8).
_MASKS = tuple((1 << (8 * n)) - 1 for n in range(9))

_EXIT_IO = kc.KVM_EXIT_IO
_EXIT_MMIO = kc.KVM_EXIT_MMIO
_EXIT_INTR = kc.KVM_EXIT_INTR
_EINTR = errno.EINTR
_EAGAIN = errno.EAGAIN

IOAPIC_PINS = 24            # GSIs of KVM's default routing; more would need KVM_SET_GSI_ROUTING


class KvmEngine(Engine):
    name = "kvm"
    snapshot_module = "kvm_snapshot"

    _probe_result = ...             # cached per process: None or the reason
    _tsc_khz = None

    # --- availability ------------------------------------------------------------------------
    @classmethod
    def probe(cls) -> str | None:
        """None if /dev/kvm opens, speaks API 12 with the capabilities we use, and can
        create a VM with a vCPU; else a one-line reason."""
        if cls._probe_result is ...:
            try:
                cls._tsc_khz = kvm_setup.measure_tsc_khz()
                cls._probe_result = None
            except (AcceleratorUnavailable, KvmError, OSError) as e:
                cls._probe_result = str(e)
        return cls._probe_result

    @classmethod
    def missing_features(cls) -> dict:
        """What this host's KVM lacks of real hardware virtualisation (engines/kvm_features.py:
        PVM runs guest ring 3 as host user code; kvm_amd resets the vCPU on a triple fault)."""
        return kvm_features.missing()

    @classmethod
    def tsc_khz(cls) -> int:
        """KVM_GET_TSC_KHZ of a throwaway vCPU (the CPUID table, which needs the value, is
        built before the engine exists). The rate is a host property, so it is cached."""
        if cls._tsc_khz is None:
            cls._tsc_khz = kvm_setup.measure_tsc_khz()
        return cls._tsc_khz

    # --- construction ----------------------------------------------------------------------------
    @classmethod
    def prepare(cls, memory):
        """Start creating the VM on another thread (kvm_setup.PreparedVm), for __init__'s `prepared`."""
        return kvm_setup.PreparedVm(memory)

    def __init__(self, memory, ports, mmio, control: RunControl, cpuid: CpuidTable, irqchip: bool = True,
                 prepared=None):
        """irqchip=False leaves out the in-kernel PIC, IOAPIC, local APIC and PIT: no
        interrupts (irq_line refuses), and every HLT exits to the VMM (ending the run at
        once with IF=0), for measurements of the bare exit path. `prepared`: prepare()'s VM."""
        super().__init__(memory, ports, mmio, control, cpuid)
        self._kvm = self._vm = self._vcpu = self._watchdog = self._halt_watch = None
        self.irqchip = irqchip
        self._holds_kick_handler = False
        self._counts = [0] * kc.EXIT_REASON_SLOTS
        self._wake = threading.Event()          # ends a HLT wait early (kick)
        self.dropped_features = []              # CPUID features KVM cannot give, for reports
        self.cpuid_overrides = []               # (leaf, subleaf, register, ours, KVM's), for reports
        self.exit_observer = None               # vmm/debug/exits.py: told of non-I/O exits (slow path)
        self._debug_hook = None                 # kvm_debug.py: KVM_EXIT_DEBUG and pause requests
        self._debug = None                      # the debug interface, once asked for
        try:
            acquire_kick_handler()
        except RuntimeError as e:
            raise VmmError(f"KvmEngine: {e}") from None
        self._holds_kick_handler = True
        try:
            made = prepared.take() if prepared is not None else kvm_setup.create_vm(memory, irqchip)
            self._kvm, self._vm, self._vcpu = made
            if prepared is not None and prepared.regions != len(memory.regions()):
                raise VmmError("guest memory regions changed while the VM was being prepared")
            self.dropped_features, self.cpuid_overrides = kvm_setup.set_cpuid(self._kvm, self._vcpu, cpuid)
            kvm_setup.set_boot_msrs(self._vcpu)
            kvm_setup.set_boot_fpu(self._vcpu)
            if irqchip:
                self._halt_watch = HaltWatch(self._vcpu)
        except BaseException:
            self.close()
            raise
        if irqchip:
            self._watchdog = Watchdog(self._kick, name="kvm-vcpu0-watchdog", poll=self._halt_watch.due,
                                      poll_intervals=self._halt_watch.intervals)
        else:
            self._watchdog = Watchdog(self._kick, name="kvm-vcpu0-watchdog")
        control.kick = self._kick

    # --- state ---------------------------------------------------------------------------------
    def set_state(self, state: CpuState) -> None:
        kvm_state.set_state(self._vcpu, state)

    def get_state(self) -> CpuState:
        return kvm_state.get_state(self._vcpu)

    # --- running -------------------------------------------------------------------------------
    def run(self, timeout: float | None = None, *, after_write=None) -> Outcome:
        """`after_write`, if given, is called after each port or MMIO write the guest makes
        (the debugger's step over a write, kvm_debug.py); the exit loop is otherwise the same."""
        if self.control.stop is not None:
            return self._stopped()
        deadline = deadline_after(timeout)
        vcpu = self._vcpu
        vcpu.bind_thread()
        watched = deadline is not None or self._halt_watch is not None
        if watched:
            if self._halt_watch is not None:
                self._halt_watch.reset()
            self._watchdog.arm(deadline)
        try:
            return self._loop(deadline, after_write)
        except KeyboardInterrupt:
            vcpu.complete_pending_io()
            return self._outcome(INTERRUPTED, "interrupted by SIGINT")
        finally:
            if watched:
                self._watchdog.disarm()
            vcpu.unbind_thread()

    def _loop(self, deadline, after_write=None):
        """The hot path: one iteration per VM exit. Port and MMIO exits are handled inline
        with nothing but local variables; every other exit goes to _other_exit()."""
        vcpu = self._vcpu
        fd = vcpu.fd
        u8, u16, u32, u64 = vcpu.u8, vcpu.u16, vcpu.u32, vcpu.u64
        ioctl = raw_ioctl
        counts = self._counts
        control = self.control
        port_read, port_write = self.ports.read, self.ports.write
        mmio_read, mmio_write = self.mmio.read, self.mmio.write
        if after_write is not None:
            port_write, mmio_write = _then(port_write, after_write), _then(mmio_write, after_write)
        masks = _MASKS
        while True:
            if ioctl(fd, KVM_RUN, 0) < 0:
                err = get_errno()
                if err != _EINTR and err != _EAGAIN:
                    raise KvmError("KVM_RUN", err)
                # A kick (timeout, stop request), a stale kick, or a signal.
                u8[IMMEDIATE_EXIT_OFFSET] = 0
                counts[_EXIT_INTR] += 1
                if control.stop is not None:
                    return self._stopped()
                if self._debug_hook is not None:
                    outcome = self._debug_hook.on_kick(halted=False)
                    if outcome is not None:
                        return outcome
                outcome = self._after_kick(deadline)
                if outcome is not None:
                    return outcome
                continue
            reason = u32[EXIT_REASON_U32]
            if reason == _EXIT_IO:
                counts[_EXIT_IO] += 1
                size = u8[IO_SIZE_U8]
                port = u16[IO_PORT_U16]
                # x86 KVM puts the data on the page after kvm_run (KVM_PIO_PAGE_OFFSET), so the
                # offset is aligned for every element size.
                offset = u64[IO_DATA_OFFSET_U64]
                if u32[IO_COUNT_U32] != 1:
                    self._string_io(port, size, offset)
                elif u8[IO_DIRECTION_U8]:                   # KVM_EXIT_IO_OUT
                    if size == 1:
                        port_write(port, 1, u8[offset])
                    elif size == 2:
                        port_write(port, 2, u16[offset >> 1])
                    else:
                        port_write(port, 4, u32[offset >> 2])
                elif size == 1:
                    u8[offset] = port_read(port, 1) & 0xFF
                elif size == 2:
                    u16[offset >> 1] = port_read(port, 2) & 0xFFFF
                else:
                    u32[offset >> 2] = port_read(port, 4) & 0xFFFF_FFFF
                if control.stop is not None:
                    return self._stopped(after_io=True)
            elif reason == _EXIT_MMIO:
                counts[_EXIT_MMIO] += 1
                addr = u64[MMIO_ADDR_U64]
                length = u32[MMIO_LEN_U32]
                if u8[MMIO_IS_WRITE_U8]:
                    mmio_write(addr, length, u64[MMIO_DATA_U64] & masks[length])
                elif length == 8:
                    u64[MMIO_DATA_U64] = mmio_read(addr, 8) & masks[8]
                else:
                    value = mmio_read(addr, length) & masks[length]
                    u8[MMIO_DATA_U8:MMIO_DATA_U8 + length] = value.to_bytes(length, "little")
                if control.stop is not None:
                    return self._stopped(after_io=True)
            else:
                outcome = self._other_exit(reason, deadline)
                if outcome is not None:
                    return outcome

    def _string_io(self, port: int, size: int, offset: int) -> None:
        """rep ins/outs: `count` elements of `size` bytes at kvm_run + offset. Elements after
        a stop request are not passed on (the guest would not have issued them)."""
        vcpu = self._vcpu
        count = vcpu.u32[IO_COUNT_U32]
        view = vcpu.u8 if size == 1 else vcpu.u16 if size == 2 else vcpu.u32
        first = offset // size
        control = self.control
        if vcpu.u8[IO_DIRECTION_U8]:
            write = self.ports.write
            for i in range(first, first + count):
                if control.stop is not None:
                    return
                write(port, size, view[i])
        else:
            read, mask = self.ports.read, _MASKS[size]
            for i in range(first, first + count):
                if control.stop is not None:
                    return
                view[i] = read(port, size) & mask

    def _other_exit(self, reason: int, deadline):
        """Every exit but port I/O and MMIO: an Outcome that ends the run, or None to go on."""
        self._counts[min(reason, kc.EXIT_REASON_SLOTS - 1)] += 1
        if reason == kc.KVM_EXIT_DEBUG:         # the debugger's own exits: not the guest's
            return self._guest_debug_exit()
        if self.exit_observer is not None:
            self.exit_observer.other(kc.exit_name(reason))
        if reason == kc.KVM_EXIT_HLT:
            return self._halted(deadline)
        if reason == kc.KVM_EXIT_SHUTDOWN:
            if kvm_features.REGISTERS_AFTER_SHUTDOWN in kvm_features.missing():
                # kvm_amd INITs the vCPU on this intercept: what we would read is the reset state.
                return Outcome(SHUTDOWN, detail="triple fault (rip unknown: KVM on AMD resets the vCPU "
                                                "on a shutdown, so the faulting registers are lost)")
            return self._outcome(SHUTDOWN, "triple fault")
        run = self._vcpu.snapshot()
        if reason == kc.KVM_EXIT_FAIL_ENTRY:
            code = run.fail_entry.hardware_entry_failure_reason
            return self._outcome(ENTRY_FAILURE, f"KVM could not enter the guest "
                                                f"(hardware entry failure reason {code:#x})")
        if reason == kc.KVM_EXIT_INTERNAL_ERROR:
            return self._internal_error(run)
        if reason == kc.KVM_EXIT_SYSTEM_EVENT:
            kind = run.system_event.type
            name = kc.SYSTEM_EVENT_NAMES.get(kind, f"type {kind}")
            return self._outcome(SYSTEM_EVENT, f"guest requested {name} (system event {kind})")
        if reason == kc.KVM_EXIT_INTR:
            return None                 # an exit for a signal that KVM_RUN did not report as EINTR
        if reason == kc.KVM_EXIT_UNKNOWN:
            code = run.hw.hardware_exit_reason
            return self._outcome(INTERNAL_ERROR, f"unknown KVM exit (hardware exit reason {code:#x})")
        return self._outcome(INTERNAL_ERROR,
                             f"unhandled KVM exit {reason} ({kc.exit_name(reason)})")

    def _internal_error(self, run: KvmRun) -> Outcome:
        suberror = run.internal.suberror
        if suberror == kc.KVM_INTERNAL_ERROR_EMULATION:
            failure = run.emulation_failure
            detail = "KVM could not emulate the instruction"
            if failure.ndata >= 2 and failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES:
                size = min(failure.insn_size, len(failure.insn_bytes))
                detail += " (bytes " + bytes(failure.insn_bytes[:size]).hex(" ") + ")"
            return self._outcome(EMULATION_FAILURE, detail)
        name = kc.INTERNAL_ERROR_NAMES.get(suberror, f"suberror {suberror}")
        data = " ".join(f"{run.internal.data[i]:#x}" for i in range(min(run.internal.ndata, 16)))
        return self._outcome(INTERNAL_ERROR, f"KVM internal error: {name}" + (f" [{data}]" if data else ""))

    def _after_kick(self, deadline):
        """The EINTR path: HALT if the vCPU sits in a HLT with interrupts off (in-kernel
        irqchip; see HLT in the module docstring), TIMEOUT past the deadline, else None."""
        if self.control.pause_requested:
            return self._outcome(PAUSED, "paused")
        halted = False
        if self._halt_watch is not None:
            halted = self._vcpu.get_mp_state() == kc.KVM_MP_STATE_HALTED
            if halted:
                regs = self._vcpu.get_regs()
                if not regs.rflags & RFLAGS_IF:
                    # Counted and observed as the hlt exit it would be without the irqchip.
                    self._counts[kc.KVM_EXIT_HLT] += 1
                    if self.exit_observer is not None:
                        self.exit_observer.other(kc.exit_name(kc.KVM_EXIT_HLT))
                    return self._outcome(HALT, "hlt with interrupts disabled", regs.rip)
        if deadline is not None and time.monotonic() >= deadline:
            return self._outcome(TIMEOUT, "timed out in hlt (interrupts enabled)" if halted else "timed out")
        return None

    def _halted(self, deadline):
        """KVM_EXIT_HLT, which only comes without the in-kernel irqchip. With IF=0 nothing
        can wake the CPU: the guest powered off. With IF=1 it waits for an interrupt; none
        can come (no interrupt controller), so sleep until the deadline or a kick (stop
        request) and end the run there."""
        regs = self._vcpu.get_regs()
        if not regs.rflags & RFLAGS_IF:
            return self._outcome(HALT, "hlt with interrupts disabled", regs.rip)
        wake = self._wake
        while True:
            wake.clear()
            if self.control.stop is not None:
                return self._stopped()
            if self._debug_hook is not None:
                outcome = self._debug_hook.on_kick(halted=True)
                if outcome is not None:
                    return outcome
            if deadline is None:
                wake.wait()
            else:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return self._outcome(TIMEOUT, "timed out in hlt (interrupts enabled)", regs.rip)
                wake.wait(remaining)

    def _kick(self) -> None:
        """Stop the run soon, from any thread: the vCPU leaves KVM_RUN or its HLT wait."""
        vcpu = self._vcpu
        if vcpu is not None:
            vcpu.kick()
        self._wake.set()

    # --- interrupts -------------------------------------------------------------------------------
    def irq_line(self, gsi: int):
        """The interrupt input `gsi` as a callable `line(level: bool)` for a device's `irq`
        argument (vmm/kvm/vm.py KvmIrqLine): KVM_IRQ_LINE, safe from any thread, waking the
        vCPU from HLT when it delivers. GSIs 0-15 are the ISA IRQs (PIC inputs, and IOAPIC
        pins of the same number), 16-23 further IOAPIC pins. GSI 0 is the in-kernel PIT's.
        The PIC's inputs are edge-triggered unless the guest sets their ELCR bits: a device
        must lower its line before a new raise is a new interrupt (line.pulse() does both)."""
        if not self.irqchip:
            raise VmmError("KvmEngine(irqchip=False) has no interrupt controller: no irq lines")
        if not 0 <= gsi < IOAPIC_PINS:
            raise VmmError(f"GSI {gsi} is not an input of the in-kernel irqchip (0-{IOAPIC_PINS - 1})")
        return self._vm.irq_line(gsi)

    def leave_lint0_masked(self) -> None:
        if self.irqchip:                # KVM resets LINT0 to ExtINT, unmasked (see the base class)
            self._vcpu.mask_lapic_lint0()

    def pic_state(self, chip: int = kc.KVM_IRQCHIP_PIC_MASTER):
        """The in-kernel 8259A's registers (vmm/kvm/structs.py KvmPicState: irr, imr, isr,
        irq_base, elcr...), for tests and reports."""
        return self._vm.get_pic_state(chip)

    # --- outcomes ----------------------------------------------------------------------------------
    def _rip(self) -> int | None:
        try:
            return self._vcpu.get_regs().rip
        except KvmError:
            return None

    def _outcome(self, reason: str, what: str, rip: int | None = None) -> Outcome:
        if rip is None:
            rip = self._rip()
        where = f"rip={rip:#x}" if rip is not None else "rip unknown"
        return Outcome(reason, detail=f"{what} at {where}", rip=rip)

    def _stopped(self, after_io: bool = False) -> Outcome:
        """The stop a device or the VMM requested, completed with rip and detail. After an
        I/O exit KVM finishes that instruction first (no further instruction runs), so the
        registers read afterwards are consistent."""
        if after_io:
            self._vcpu.complete_pending_io()
        outcome = self.control.stop
        if outcome.rip is None:
            outcome.rip = self._rip()
        if not outcome.detail:
            where = f"rip={outcome.rip:#x}" if outcome.rip is not None else "rip unknown"
            outcome.detail = f"{outcome.reason} at {where}"
        return outcome

    def exit_counts(self) -> dict:
        return {kc.exit_name(reason): n for reason, n in enumerate(self._counts) if n}

    # --- debugging (the debug interface is engines/kvm_debug.py) -------------------------------------
    def debug(self):
        """The debug interface (KVM_SET_GUEST_DEBUG: breakpoints, stepping, tracing)."""
        if self._debug is None:
            from .kvm_debug import KvmDebug
            self._debug = KvmDebug(self)
        return self._debug

    def set_debug_hook(self, hook) -> None:
        """Route KVM_EXIT_DEBUG and kicks to `hook`, or None to stop (guest debugging off).

        The hook implements on_debug_exit(exception, pc, dr6) -> Outcome | None, called for
        every KVM_EXIT_DEBUG (`pc` is the linear address of the next instruction), and
        on_kick(halted) -> Outcome | None, called when a kick ends KVM_RUN or the HLT wait
        (`halted`: the guest sits after a HLT with IF=1). An Outcome ends run() with it; None
        goes on. The exit loop itself is unchanged: both calls are on its slow paths."""
        self._debug_hook = hook
        if hook is None and self._vcpu is not None:         # (harmless after close())
            self._vcpu.set_guest_debug(0)

    def _guest_debug_exit(self):
        """KVM_EXIT_DEBUG: the debugger's own exit, not the guest's."""
        hook = self._debug_hook
        if hook is None:
            return self._outcome(INTERNAL_ERROR, "KVM_EXIT_DEBUG with guest debugging off")
        return hook.on_debug_exit(*self._vcpu.debug_exit())

    # --- lifetime ----------------------------------------------------------------------------------
    def close(self) -> None:
        if self.control.kick == self._kick:
            self.control.kick = None
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.close()
        halt_watch, self._halt_watch = self._halt_watch, None
        if halt_watch is not None:
            halt_watch.close()
        vcpu, self._vcpu = self._vcpu, None
        if vcpu is not None:
            vcpu.close()
        vm, self._vm = self._vm, None
        if vm is not None:
            vm.close()
        kvm, self._kvm = self._kvm, None
        if kvm is not None:
            kvm.close()
        if self._holds_kick_handler:
            self._holds_kick_handler = False
            release_kick_handler()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --- helpers ----------------------------------------------------------------------------------------
def _then(write, after):
    """`write`, followed by a call of `after()`."""
    def write_then(address, size, value):
        write(address, size, value)
        after()
    return write_then


