"""KvmEngine: the guest runs on /dev/kvm; this module is its VM-exit loop.

Everything KVM-specific (structs, ioctls, the kvm_run page) is in vmm/kvm; this module maps
the engine contract (engines/base.py) onto it:

- construction: a VM with guest RAM as memory slot 0, the TSS and identity-map pages from
  layout.py, KVM's in-kernel interrupt controllers (8259A pair, IOAPIC, local APIC) and
  8254 PIT, one vCPU with our CPUID table (restricted to what KVM supports), the boot MSRs
  and a reset FPU;
- irq_line(gsi): what the machine hands a device as its interrupt output (KVM_IRQ_LINE);
- set_state/get_state: CpuState <-> kvm_regs + kvm_sregs;
- run(): KVM_RUN until an exit that ends the run. Port I/O goes to `ports`, MMIO to `mmio`,
  and after every I/O exit `control.stop` is checked.

Timeouts and stop requests from other threads kick the vCPU (vmm/kvm/kick.py): a watchdog
thread sets kvm_run.immediate_exit and signals the vCPU thread, so KVM_RUN returns EINTR
even while the guest spins without exiting.

HLT. With the in-kernel irqchip, KVM keeps HLT to itself: the vCPU sleeps inside KVM_RUN
until an interrupt (the PIT's, or one a device raised) wakes it, at no cost to us. A HLT
with interrupts off never wakes, and ends the run with HALT (the guest powered off); no
exit tells us of it, so the watchdog looks (HaltWatch, below): at HALT_POLL_SECONDS
intervals while a run lasts it reads the vCPU's KVM statistics `blocking` and `halt_exits`
(a pread, no vCPU stop), and when the vCPU has sat in the same HLT for a whole interval it
kicks it once; the EINTR path then reads the MP state and RFLAGS.IF. A busy guest, or one
woken by timer ticks, is never kicked; a HLT with IF=0 is noticed within two intervals.
(An NMI could wake such a HLT; the VMM raises none, and a guest that routes the PIT or an
IOAPIC pin to NMI is not supported.)

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
import os
import threading
import time

from .. import layout
from ..arch.x86 import msrs
from ..arch.x86.cpu_state import (CR0_PE, EFER_LMA, GENERAL_REGISTERS, RFLAGS_IF, SEGMENT_REGISTERS,
                                  CpuState, Segment)
from ..arch.x86.cpuid import CpuidEntry, CpuidTable
from ..errors import AcceleratorUnavailable, VmmError
from ..kvm import Kvm, KvmError
from ..kvm import constants as kc
from ..kvm.ioctl import get_errno, raw_ioctl
from ..kvm.kick import Watchdog, acquire_kick_handler, release_kick_handler
from ..kvm.requests import KVM_RUN
from ..kvm.stats import Stats
from ..kvm.vcpu import IMMEDIATE_EXIT_OFFSET
from ..kvm.structs import (KVM_CPUID_FLAG_SIGNIFCANT_INDEX,
                           KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES, KVM_PIT_SPEAKER_DUMMY,
                           KvmCpuidEntry2, KvmFpu, KvmRegs, KvmRun, KvmRunIo, KvmRunMmio)
from .base import (EMULATION_FAILURE, ENTRY_FAILURE, HALT, INTERNAL_ERROR, INTERRUPTED, SHUTDOWN,
                   SYSTEM_EVENT, TIMEOUT, Engine, Outcome, RunControl, deadline_after)

# --- where the exit loop finds kvm_run's fields, as indexes into the Vcpu's u8/u16/u32/u64
# views (derived from the ctypes layout, which tests/test_kvm_abi.py checks).
_IO = KvmRun.io.offset
_MMIO = KvmRun.mmio.offset
EXIT_REASON_U32 = KvmRun.exit_reason.offset // 4
IO_DIRECTION_U8 = _IO + KvmRunIo.direction.offset
IO_SIZE_U8 = _IO + KvmRunIo.size.offset
IO_PORT_U16 = (_IO + KvmRunIo.port.offset) // 2
IO_COUNT_U32 = (_IO + KvmRunIo.count.offset) // 4
IO_DATA_OFFSET_U64 = (_IO + KvmRunIo.data_offset.offset) // 8
MMIO_ADDR_U64 = (_MMIO + KvmRunMmio.phys_addr.offset) // 8
MMIO_DATA_U8 = _MMIO + KvmRunMmio.data.offset
MMIO_DATA_U64 = MMIO_DATA_U8 // 8
MMIO_LEN_U32 = (_MMIO + KvmRunMmio.len.offset) // 4
MMIO_IS_WRITE_U8 = _MMIO + KvmRunMmio.is_write.offset

# Value masks by access size in bytes (index 0..8).
_MASKS = tuple((1 << (8 * n)) - 1 for n in range(9))

# Reset state of the x87 and SSE control registers (SDM vol. 1, 8.1.5 and 10.2.3.1).
FPU_CONTROL_WORD = 0x37F
MXCSR_DEFAULT = 0x1F80

PVM_MODULE = "/sys/module/kvm_pvm"      # present where KVM is the PVM nested hypervisor
USER_CPUID = "user-cpuid"               # a feature name `.expect` files can require
LINUX_RING0 = "linux-ring0"             # a stock Linux kernel's ring 0 runs (the Linux tests need it)

_EXIT_IO = kc.KVM_EXIT_IO
_EXIT_MMIO = kc.KVM_EXIT_MMIO
_EXIT_INTR = kc.KVM_EXIT_INTR
_EINTR = errno.EINTR
_EAGAIN = errno.EAGAIN

# How often the watchdog looks for a vCPU halted with interrupts off (see HLT above): 10 ms
# after run() starts, then at intervals doubling up to 100 ms. A `cli; hlt` is noticed 1-2
# intervals after it: within 30 ms early in a run, 200 ms later on. Each look costs the
# watchdog thread a wake-up (about 0.1 ms of CPU here), 10 a second in the long run.
HALT_POLL_SECONDS = (0.01, 0.1)
HALT_POLL_BLIND_SECONDS = (0.1, 0.1)    # without KVM statistics: a kick this often, halted or not
IOAPIC_PINS = 24            # GSIs of KVM's default routing; more would need KVM_SET_GSI_ROUTING
LAPIC_LVT_LINT0 = 0x350     # xAPIC register offsets and bits (Intel SDM vol. 3A, 11.4.1, 11.5.1)
LAPIC_LVT_MASKED = 1 << 16


class KvmEngine(Engine):
    name = "kvm"

    _probe_result = ...             # cached per process: None or the reason
    _tsc_khz = None

    # --- availability ------------------------------------------------------------------------
    @classmethod
    def probe(cls) -> str | None:
        """None if /dev/kvm opens, speaks API 12 with the capabilities we use, and can
        create a VM with a vCPU; else a one-line reason."""
        if cls._probe_result is ...:
            try:
                cls._tsc_khz = _measure_tsc_khz()
                cls._probe_result = None
            except (AcceleratorUnavailable, KvmError, OSError) as e:
                cls._probe_result = str(e)
        return cls._probe_result

    @classmethod
    def missing_features(cls) -> dict:
        """PVM (the kvm_pvm module) runs guest ring 3 as host user code, without VT-x or
        AMD-V: a ring-3 CPUID executes on the host CPU and never reaches our CPUID table,
        and guest ring 0 is emulated instruction by instruction, too slowly and too
        incompletely (cmpxchg16b, xrstor, int3) for a stock Linux kernel."""
        if os.path.exists(PVM_MODULE):
            return {USER_CPUID: "KVM here is kvm_pvm, which runs ring-3 CPUID on the host CPU: "
                                "user code sees the host's vendor, not our CPUID table",
                    LINUX_RING0: "KVM here is kvm_pvm, without VT-x or AMD-V: it emulates guest ring 0 at "
                                 "about 1 M instructions/s and fails on instructions Linux uses "
                                 "(shared notes, linux-on-unicorn.md)"}
        return {}

    @classmethod
    def tsc_khz(cls) -> int:
        """KVM_GET_TSC_KHZ of a throwaway vCPU (the CPUID table, which needs the value, is
        built before the engine exists). The rate is a host property, so it is cached."""
        if cls._tsc_khz is None:
            cls._tsc_khz = _measure_tsc_khz()
        return cls._tsc_khz

    # --- construction ----------------------------------------------------------------------------
    def __init__(self, memory, ports, mmio, control: RunControl, cpuid: CpuidTable, irqchip: bool = True):
        """irqchip=False leaves out the in-kernel PIC, IOAPIC, local APIC and PIT: no
        interrupts (irq_line refuses), and every HLT exits to the VMM (ending the run at
        once with IF=0), for measurements of the bare exit path."""
        super().__init__(memory, ports, mmio, control, cpuid)
        self._kvm = self._vm = self._vcpu = self._watchdog = self._halt_watch = None
        self.irqchip = irqchip
        self._holds_kick_handler = False
        self._counts = [0] * kc.EXIT_REASON_SLOTS
        self._wake = threading.Event()          # ends a HLT wait early (kick)
        self.dropped_features = []              # CPUID features KVM cannot give, for reports
        self.cpuid_overrides = []               # (leaf, subleaf, register, ours, KVM's), for reports
        self.exit_observer = None               # vmm/debug/exits.py: told of non-I/O exits (slow path)
        self._debug_hook = None                 # vmm/debug: KVM_EXIT_DEBUG and pause requests
        try:
            acquire_kick_handler()
        except RuntimeError as e:
            raise VmmError(f"KvmEngine: {e}") from None
        self._holds_kick_handler = True
        try:
            self._kvm = Kvm()
            self._vm = self._kvm.create_vm()
            self._vm.set_tss_addr(layout.KVM_TSS_ADDR)
            self._vm.set_identity_map_addr(layout.KVM_IDENTITY_MAP_ADDR)   # before any vCPU
            self._map_memory(memory)
            if irqchip:
                self._vm.create_irqchip()                               # before any vCPU
                self._vm.create_pit2(KVM_PIT_SPEAKER_DUMMY)
            self._vcpu = self._vm.create_vcpu(0)
            self._set_cpuid(cpuid)
            self._set_boot_msrs()
            self._set_boot_fpu()
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

    def _map_memory(self, memory) -> None:
        """One memory slot per region: RAM, then read-only images (firmware). A guest write
        to a read-only slot becomes an MMIO exit, which the bus drops and counts."""
        for slot, (gpa, size, host_address, read_only) in enumerate(memory.regions()):
            if read_only:
                self._kvm.require(kc.KVM_CAP_READONLY_MEM)
            self._vm.set_user_memory_region(slot, gpa, size, host_address,
                                            kc.KVM_MEM_READONLY if read_only else 0)

    def _set_cpuid(self, table: CpuidTable) -> None:
        """Our table, minus what KVM cannot give, goes to KVM_SET_CPUID2 entry for entry.
        Some KVMs then change entries (kvm_pvm merges host features into leaves 1 and 7 and
        adds leaf 0xD); the differences are kept in `cpuid_overrides` for reports."""
        supported = CpuidTable(
            CpuidEntry(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx,
                       significant_index=bool(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX))
            for e in self._kvm.supported_cpuid())
        self.dropped_features = table.restrict_to(supported)
        self._vcpu.set_cpuid2(
            KvmCpuidEntry2(function=e.function, index=e.index,
                           flags=KVM_CPUID_FLAG_SIGNIFCANT_INDEX if e.significant_index else 0,
                           eax=e.eax, ebx=e.ebx, ecx=e.ecx, edx=e.edx)
            for e in table.entries)
        self.cpuid_overrides = _cpuid_differences(table, self._vcpu.get_cpuid2())

    def _set_boot_msrs(self) -> None:
        done = self._vcpu.set_msrs(msrs.BOOT_MSRS)
        if done != len(msrs.BOOT_MSRS):
            index = msrs.BOOT_MSRS[done][0]
            raise KvmError(f"KVM_SET_MSRS ({msrs.MSR_NAMES.get(index, hex(index))} refused)", errno.EINVAL)

    def _set_boot_fpu(self) -> None:
        fpu = KvmFpu()
        fpu.fcw = FPU_CONTROL_WORD
        fpu.mxcsr = MXCSR_DEFAULT
        self._vcpu.set_fpu(fpu)

    # --- state ---------------------------------------------------------------------------------
    def set_state(self, state: CpuState) -> None:
        vcpu = self._vcpu
        sregs = vcpu.get_sregs()            # keeps apic_base, cr8 and the interrupt bitmap
        for name in SEGMENT_REGISTERS:
            _segment_to_kvm(getattr(state, name), getattr(sregs, name))
        sregs.gdt.base, sregs.gdt.limit = state.gdt_base, state.gdt_limit
        sregs.idt.base, sregs.idt.limit = state.idt_base, state.idt_limit
        sregs.cr0, sregs.cr2, sregs.cr3, sregs.cr4 = state.cr0, state.cr2, state.cr3, state.cr4
        sregs.efer = state.efer
        vcpu.set_sregs(sregs)
        regs = KvmRegs(rip=state.rip, rflags=state.rflags)
        for name in GENERAL_REGISTERS:
            setattr(regs, name, state.regs.get(name, 0))
        vcpu.set_regs(regs)

    def get_state(self) -> CpuState:
        regs = self._vcpu.get_regs()
        sregs = self._vcpu.get_sregs()
        state = CpuState(
            regs={name: getattr(regs, name) for name in GENERAL_REGISTERS},
            rip=regs.rip, rflags=regs.rflags,
            gdt_base=sregs.gdt.base, gdt_limit=sregs.gdt.limit,
            idt_base=sregs.idt.base, idt_limit=sregs.idt.limit,
            cr0=sregs.cr0, cr2=sregs.cr2, cr3=sregs.cr3, cr4=sregs.cr4, efer=sregs.efer)
        for name in SEGMENT_REGISTERS:
            setattr(state, name, _segment_from_kvm(getattr(sregs, name)))
        return state

    # --- running -------------------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> Outcome:
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
            return self._loop(deadline)
        except KeyboardInterrupt:
            vcpu.complete_pending_io()
            return self._outcome(INTERRUPTED, "interrupted by SIGINT")
        finally:
            if watched:
                self._watchdog.disarm()
            vcpu.unbind_thread()

    def _loop(self, deadline):
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
            return self._debug_exit()
        if self.exit_observer is not None:
            self.exit_observer.other(kc.exit_name(reason))
        if reason == kc.KVM_EXIT_HLT:
            return self._halted(deadline)
        if reason == kc.KVM_EXIT_SHUTDOWN:
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
        argument (vmm/kvm/vm.py IrqLine): KVM_IRQ_LINE, safe from any thread, waking the
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
        """KVM resets the boot CPU's LINT0 to ExtINT, unmasked (the virtual wire): mask it,
        as the unicorn engine does, for a Linux boot (Engine.leave_lint0_masked)."""
        if self.irqchip:
            lint0 = self._vcpu.get_lapic_register(LAPIC_LVT_LINT0)
            self._vcpu.set_lapic_register(LAPIC_LVT_LINT0, lint0 | LAPIC_LVT_MASKED)

    def lapic_register(self, offset: int) -> int:
        """A register of the in-kernel local APIC (xAPIC offsets), for tests and reports."""
        return self._vcpu.get_lapic_register(offset)

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

    # --- debugging (vmm/debug: instruction tracing, breakpoints, the gdb stub) -------------------
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

    def set_guest_debug(self, control: int, debugreg=()) -> None:
        """KVM_SET_GUEST_DEBUG (vmm/kvm/structs.py KVM_GUESTDBG_*; DR0-3 and DR7 in debugreg)."""
        self._vcpu.set_guest_debug(control, debugreg)

    def guest_debug_support(self) -> int:
        """The KVM_GUESTDBG_* flags this KVM supports (KVM_CAP_SET_GUEST_DEBUG2; 0 if it
        does not say, as before Linux 5.17)."""
        return max(0, self._kvm.check_extension(kc.KVM_CAP_SET_GUEST_DEBUG2))

    def kick(self) -> None:
        """From any thread: end KVM_RUN (or the HLT wait) soon; the debug hook decides what
        the kick means (a pause)."""
        self._kick()

    def get_fpu_state(self) -> dict:
        """x87 and SSE state for debuggers: st (8 x 10 bytes), fctrl, fstat, ftag (abridged),
        fop, fioff, fooff, xmm (16 x 16 bytes), mxcsr."""
        fpu = self._vcpu.get_fpu()
        return {"st": [bytes(fpu.fpr[i])[:10] for i in range(8)], "fctrl": fpu.fcw, "fstat": fpu.fsw,
                "ftag": fpu.ftwx, "fop": fpu.last_opcode, "fioff": fpu.last_ip, "fooff": fpu.last_dp,
                "xmm": [bytes(fpu.xmm[i]) for i in range(16)], "mxcsr": fpu.mxcsr}

    def code_context(self) -> tuple:
        """(cr0, cr3, cr4, efer, code bits) from one KVM_GET_SREGS: what a tracer needs to
        find and decode the next instruction, without building a whole CpuState."""
        sregs = self._vcpu.get_sregs()
        cs = sregs.cs
        if sregs.cr0 & CR0_PE:
            bits = 64 if sregs.efer & EFER_LMA and cs.l else 32 if cs.db else 16
        else:
            bits = 16
        return sregs.cr0, sregs.cr3, sregs.cr4, sregs.efer, bits

    def _debug_exit(self):
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
class HaltWatch:
    """Tells the watchdog when a kick is worth making to look for a HLT with interrupts off
    (see HLT in the module docstring). due() runs in the watchdog thread at `intervals`
    (Watchdog's poll_intervals): true once the vCPU has been blocking in the same HLT (its
    `halt_exits` count unchanged) at two polls in a row, and only once per HLT; a guest that
    halts between timer ticks is never kicked. Without KVM's statistics (before Linux 5.14)
    it is always true: a blind periodic kick."""

    def __init__(self, vcpu):
        self._stats = self._read = None
        try:
            self._stats = Stats(vcpu.fd)
            self._read = self._stats.reader("blocking", "halt_exits")
        except (KvmError, OSError, KeyError):
            self.close()
        self.intervals = HALT_POLL_SECONDS if self._read is not None else HALT_POLL_BLIND_SECONDS
        self.reset()

    def reset(self) -> None:
        self._seen = None           # halt_exits when last seen blocking
        self._kicked = None         # halt_exits we kicked for

    def due(self) -> bool:
        if self._read is None:
            return True
        blocking, halts = self._read()
        if not blocking:
            self._seen = None
            return False
        if halts == self._kicked:
            return False
        if halts != self._seen:
            self._seen = halts
            return False
        self._kicked = halts
        return True

    def close(self) -> None:
        stats, self._stats, self._read = self._stats, None, None
        if stats is not None:
            stats.close()


def _cpuid_differences(table: CpuidTable, entries) -> list:
    """(function, index, register, table's value, vCPU's value) wherever the vCPU's CPUID
    (KVM_GET_CPUID2) differs from the table, including leaves only KVM has."""
    differences = []
    seen = set()
    for e in entries:
        key = (e.function, e.index)
        seen.add(key)
        ours = table.lookup(e.function, e.index) if _has_leaf(table, e.function, e.index) else None
        for i, reg in enumerate(("eax", "ebx", "ecx", "edx")):
            value = getattr(e, reg)
            if ours is None or ours[i] != value:
                differences.append((e.function, e.index, reg, None if ours is None else ours[i], value))
    for e in table.entries:
        if (e.function, e.index) not in seen:
            differences.extend((e.function, e.index, reg, getattr(e, reg), None)
                               for reg in ("eax", "ebx", "ecx", "edx"))
    return differences


def _has_leaf(table: CpuidTable, function: int, index: int) -> bool:
    return any(e.function == function and (e.index == index or not e.significant_index)
               for e in table.entries)


def _measure_tsc_khz() -> int:
    with Kvm(required=kc.REQUIRED_CAPABILITIES + kc.IRQCHIP_CAPABILITIES) as kvm, kvm.create_vm() as vm:
        return vm.create_vcpu(0).get_tsc_khz()


def _segment_to_kvm(seg: Segment, out) -> None:
    out.base, out.limit, out.selector, out.type = seg.base, seg.limit, seg.selector, seg.type
    out.present, out.dpl, out.db, out.s = seg.present, seg.dpl, seg.db, seg.s
    out.l, out.g, out.avl, out.unusable = seg.l, seg.g, seg.avl, seg.unusable


def _segment_from_kvm(k) -> Segment:
    return Segment(selector=k.selector, base=k.base, limit=k.limit, type=k.type, present=k.present,
                   dpl=k.dpl, db=k.db, s=k.s, l=k.l, g=k.g, avl=k.avl, unusable=k.unusable)
