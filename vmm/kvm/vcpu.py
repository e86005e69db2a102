"""Vcpu: one virtual CPU (vCPU ioctls) and its shared kvm_run page."""
import ctypes
import errno
import mmap
import threading

from . import ioctl_numbers as r
from .ioctl import FdOwner, KvmError, get_errno, ioctl, raw_ioctl
from .kick import send_kick
from .structs import (KVM_VCPU_TSC_CTRL, KVM_VCPU_TSC_OFFSET, KvmCpuidEntry2, KvmDeviceAttr, KvmFpu, KvmGuestDebug,
                      KvmLapicState, KvmMpState, KvmRegs, KvmRun, KvmRunDebug, KvmRunIo, KvmRunMmio, KvmSregs,
                      KvmTranslation, KvmVcpuEvents, KvmXsave, cpuid2_class, msrs_class)

LAPIC_LVT_LINT0 = 0x350     # xAPIC register offset and mask bit (Intel SDM vol. 3A, 11.4.1, 11.5.1)
LAPIC_LVT_MASKED = 1 << 16

KVM_MAX_CPUID_ENTRIES = 256           # arch/x86/include/asm/kvm_host.h
_CPUID_SENTINEL = 0xFFFF_FFFF         # no CPUID entry has this function and subleaf

# Byte offset of kvm_run.immediate_exit, for the views below.
IMMEDIATE_EXIT_OFFSET = KvmRun.immediate_exit.offset
# Where an exit loop finds kvm_run's fields, as indexes into the Vcpu's u8/u16/u32/u64 views
# (derived from the ctypes layout, which tests/test_kvm_abi.py checks).
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
# kvm_run.debug.arch fields as indexes into the u32/u64 views.
_DEBUG_EXCEPTION_U32 = (KvmRun.debug.offset + KvmRunDebug.exception.offset) // 4
_DEBUG_PC_U64 = (KvmRun.debug.offset + KvmRunDebug.pc.offset) // 8
_DEBUG_DR6_U64 = (KvmRun.debug.offset + KvmRunDebug.dr6.offset) // 8


class Vcpu(FdOwner):
    """Created by Vm.create_vcpu().

    `u8`, `u16`, `u32`, `u64` are memoryviews of the mmapped kvm_run page in those units: an
    exit loop reads a field as e.g. `u32[KvmRun.exit_reason.offset // 4]` without building
    any ctypes object. They stay valid until close().
    """

    def __init__(self, fd: int, mmap_size: int):
        self.fd = fd
        self._mmap = mmap.mmap(fd, mmap_size, flags=mmap.MAP_SHARED,
                               prot=mmap.PROT_READ | mmap.PROT_WRITE)
        self.u8 = memoryview(self._mmap)
        self.u16 = self.u8.cast("H")
        self.u32 = self.u8.cast("I")
        self.u64 = self.u8.cast("Q")
        # The thread inside run_loop (see bind_thread), guarded for kick() from other threads.
        self._lock = threading.Lock()
        self._thread = None

    # --- registers ----------------------------------------------------------------------------
    def get_regs(self) -> KvmRegs:
        regs = KvmRegs()
        ioctl(self.fd, r.KVM_GET_REGS, regs, "KVM_GET_REGS")
        return regs

    def set_regs(self, regs: KvmRegs) -> None:
        ioctl(self.fd, r.KVM_SET_REGS, regs, "KVM_SET_REGS")

    def get_sregs(self) -> KvmSregs:
        sregs = KvmSregs()
        ioctl(self.fd, r.KVM_GET_SREGS, sregs, "KVM_GET_SREGS")
        return sregs

    def set_sregs(self, sregs: KvmSregs) -> None:
        ioctl(self.fd, r.KVM_SET_SREGS, sregs, "KVM_SET_SREGS")

    def get_fpu(self) -> KvmFpu:
        fpu = KvmFpu()
        ioctl(self.fd, r.KVM_GET_FPU, fpu, "KVM_GET_FPU")
        return fpu

    def set_fpu(self, fpu: KvmFpu) -> None:
        ioctl(self.fd, r.KVM_SET_FPU, fpu, "KVM_SET_FPU")

    def get_xsave(self) -> KvmXsave:
        xsave = KvmXsave()
        ioctl(self.fd, r.KVM_GET_XSAVE, xsave, "KVM_GET_XSAVE")
        return xsave

    def set_xsave(self, xsave: KvmXsave) -> None:
        ioctl(self.fd, r.KVM_SET_XSAVE, xsave, "KVM_SET_XSAVE")

    def get_lapic(self) -> KvmLapicState:
        """KVM_GET_LAPIC: the whole register page (TMCCT holds the timer's current count)."""
        state = KvmLapicState()
        ioctl(self.fd, r.KVM_GET_LAPIC, state, "KVM_GET_LAPIC")
        return state

    def set_lapic(self, state: KvmLapicState) -> None:
        """KVM_SET_LAPIC: the timer restarts from the page's TMCCT (Linux 4.17 and later)."""
        ioctl(self.fd, r.KVM_SET_LAPIC, state, "KVM_SET_LAPIC")

    def get_events(self) -> KvmVcpuEvents:
        """KVM_GET_VCPU_EVENTS: an exception or interrupt KVM is injecting, NMI state and
        the STI / MOV SS interrupt shadow."""
        events = KvmVcpuEvents()
        ioctl(self.fd, r.KVM_GET_VCPU_EVENTS, events, "KVM_GET_VCPU_EVENTS")
        return events

    def set_events(self, events: KvmVcpuEvents) -> None:
        ioctl(self.fd, r.KVM_SET_VCPU_EVENTS, events, "KVM_SET_VCPU_EVENTS")

    def _tsc_offset_attr(self, value: ctypes.c_int64) -> KvmDeviceAttr:
        return KvmDeviceAttr(group=KVM_VCPU_TSC_CTRL, attr=KVM_VCPU_TSC_OFFSET, addr=ctypes.addressof(value))

    def has_tsc_offset(self) -> bool:
        """Whether KVM lets us read and set the guest's TSC offset (Linux 5.16 and later)."""
        value = ctypes.c_int64()
        attr = self._tsc_offset_attr(value)
        return raw_ioctl(self.fd, r.KVM_HAS_DEVICE_ATTR, ctypes.addressof(attr)) == 0

    def get_tsc_offset(self) -> int:
        """The guest's TSC minus the host's (KVM_VCPU_TSC_OFFSET)."""
        value = ctypes.c_int64()
        ioctl(self.fd, r.KVM_GET_DEVICE_ATTR, self._tsc_offset_attr(value), "KVM_GET_DEVICE_ATTR(TSC offset)")
        return value.value

    def set_tsc_offset(self, offset: int) -> None:
        value = ctypes.c_int64(offset)
        ioctl(self.fd, r.KVM_SET_DEVICE_ATTR, self._tsc_offset_attr(value), "KVM_SET_DEVICE_ATTR(TSC offset)")

    def set_tsc_khz(self, khz: int) -> bool:
        """KVM_SET_TSC_KHZ: scale the guest's TSC to `khz`; False where KVM cannot."""
        return raw_ioctl(self.fd, r.KVM_SET_TSC_KHZ, khz) == 0

    def get_lapic_register(self, offset: int) -> int:
        """A 32-bit register of the in-kernel local APIC (KVM_GET_LAPIC)."""
        state = KvmLapicState()
        ioctl(self.fd, r.KVM_GET_LAPIC, state, "KVM_GET_LAPIC")
        return int.from_bytes(bytes(state.regs[offset:offset + 4]), "little")

    def set_lapic_register(self, offset: int, value: int) -> None:
        """Change one register of the in-kernel local APIC (KVM_GET_LAPIC, KVM_SET_LAPIC)."""
        state = KvmLapicState()
        ioctl(self.fd, r.KVM_GET_LAPIC, state, "KVM_GET_LAPIC")
        state.regs[offset:offset + 4] = list(value.to_bytes(4, "little"))
        ioctl(self.fd, r.KVM_SET_LAPIC, state, "KVM_SET_LAPIC")

    def mask_lapic_lint0(self) -> None:
        """Set the mask bit of the in-kernel local APIC's LVT LINT0 entry."""
        self.set_lapic_register(LAPIC_LVT_LINT0, self.get_lapic_register(LAPIC_LVT_LINT0) | LAPIC_LVT_MASKED)

    def get_msrs(self, indices) -> dict:
        """KVM_GET_MSRS: {index: value} for the MSRs KVM could read (it stops at the first
        one it cannot, like the hardware would #GP)."""
        indices = list(indices)
        buf = msrs_class(len(indices))()
        buf.nmsrs = len(indices)
        for entry, index in zip(buf.entries, indices):
            entry.index = index
        done = ioctl(self.fd, r.KVM_GET_MSRS, buf, "KVM_GET_MSRS")
        return {buf.entries[i].index: buf.entries[i].data for i in range(done)}

    def set_msrs(self, values) -> int:
        """KVM_SET_MSRS from [(index, value)]; returns how many KVM accepted, in order
        (it stops at the first MSR it refuses)."""
        values = list(values)
        buf = msrs_class(len(values))()
        buf.nmsrs = len(values)
        for entry, (index, value) in zip(buf.entries, values):
            entry.index = index
            entry.data = value
        return ioctl(self.fd, r.KVM_SET_MSRS, buf, "KVM_SET_MSRS")

    def set_cpuid2(self, entries) -> None:
        """KVM_SET_CPUID2 with a list of KvmCpuidEntry2."""
        entries = list(entries)
        buf = cpuid2_class(len(entries))()
        buf.nent = len(entries)
        for i, entry in enumerate(entries):
            buf.entries[i] = entry
        ioctl(self.fd, r.KVM_SET_CPUID2, buf, "KVM_SET_CPUID2")

    def get_cpuid2(self) -> list:
        """KVM_GET_CPUID2: the CPUID entries the vCPU actually has (KVM may have changed
        some of those given to KVM_SET_CPUID2), as a list of KvmCpuidEntry2.

        Older kernels (Debian 12's 6.1 among them) copy the entries but leave `nent` as the
        caller set it, so the buffer is filled with sentinel entries first: the entries end
        at the first sentinel still there (or at `nent`, where the kernel updates it)."""
        buf = cpuid2_class(KVM_MAX_CPUID_ENTRIES)()
        buf.nent = KVM_MAX_CPUID_ENTRIES
        for entry in buf.entries:
            entry.function = entry.index = _CPUID_SENTINEL
        ioctl(self.fd, r.KVM_GET_CPUID2, buf, "KVM_GET_CPUID2")
        entries = []
        for entry in buf.entries[:buf.nent]:
            if entry.function == entry.index == _CPUID_SENTINEL:
                break
            entries.append(KvmCpuidEntry2.from_buffer_copy(entry))
        return entries

    def get_tsc_khz(self) -> int:
        return ioctl(self.fd, r.KVM_GET_TSC_KHZ, 0, "KVM_GET_TSC_KHZ")

    # --- debugging ------------------------------------------------------------------------------
    def set_guest_debug(self, control: int, debugreg=()) -> None:
        """KVM_SET_GUEST_DEBUG: `control` is KVM_GUESTDBG_* flags (0 turns debugging off);
        `debugreg` up to 8 values for DR0-DR3 and DR7 (index 7) with KVM_GUESTDBG_USE_HW_BP."""
        dbg = KvmGuestDebug(control=control)
        for i, value in enumerate(debugreg):
            dbg.arch.debugreg[i] = value
        ioctl(self.fd, r.KVM_SET_GUEST_DEBUG, dbg, "KVM_SET_GUEST_DEBUG")

    def debug_exit(self) -> tuple:
        """(exception, pc, dr6) of the last KVM_EXIT_DEBUG (kvm_run.debug.arch), read from
        the page in place (a single-step trace takes one per instruction)."""
        return self.u32[_DEBUG_EXCEPTION_U32], self.u64[_DEBUG_PC_U64], self.u64[_DEBUG_DR6_U64]

    def get_mp_state(self) -> int:
        state = KvmMpState()
        ioctl(self.fd, r.KVM_GET_MP_STATE, state, "KVM_GET_MP_STATE")
        return state.mp_state

    def set_mp_state(self, mp_state: int) -> None:
        ioctl(self.fd, r.KVM_SET_MP_STATE, KvmMpState(mp_state=mp_state), "KVM_SET_MP_STATE")

    def translate(self, linear: int):
        """KVM_TRANSLATE: the guest-physical address of `linear` under the vCPU's current
        paging, or None where it is not mapped."""
        tr = KvmTranslation(linear_address=linear)
        ioctl(self.fd, r.KVM_TRANSLATE, tr, "KVM_TRANSLATE")
        return tr.physical_address if tr.valid else None

    # --- running --------------------------------------------------------------------------------
    def run(self) -> int:
        """One KVM_RUN: 0 after an exit (see exit_reason), or EINTR/EAGAIN when a signal or
        immediate_exit ended it early; other errors raise KvmError."""
        if raw_ioctl(self.fd, r.KVM_RUN, 0) >= 0:
            return 0
        err = get_errno()
        if err in (errno.EINTR, errno.EAGAIN):
            return err
        raise KvmError("KVM_RUN", err)

    def snapshot(self) -> KvmRun:
        """A copy of kvm_run, for the cold paths that decode an unusual exit."""
        return KvmRun.from_buffer_copy(self._mmap)

    @property
    def exit_reason(self) -> int:
        return self.u32[KvmRun.exit_reason.offset // 4]

    @property
    def immediate_exit(self) -> int:
        return self.u8[IMMEDIATE_EXIT_OFFSET]

    @immediate_exit.setter
    def immediate_exit(self, value: int) -> None:
        self.u8[IMMEDIATE_EXIT_OFFSET] = value

    def complete_pending_io(self) -> None:
        """Re-enter KVM_RUN with immediate_exit set: KVM finishes an IN/OUT/MMIO whose exit
        was handled (the registers then say so) and returns EINTR without running any
        further guest instruction (Documentation/virt/kvm/api.rst, kvm_run)."""
        self.u8[IMMEDIATE_EXIT_OFFSET] = 1
        try:
            self.run()
        finally:
            self.u8[IMMEDIATE_EXIT_OFFSET] = 0

    # --- kicks from other threads -------------------------------------------------------------
    def bind_thread(self) -> None:
        """Record the calling thread as the one that runs KVM_RUN, the target of kick()."""
        with self._lock:
            self._thread = threading.get_ident()

    def unbind_thread(self) -> None:
        with self._lock:
            self._thread = None

    def kick(self) -> None:
        """Make the current or the next KVM_RUN return EINTR (thread-safe). The signal is
        sent only to a bound thread other than the caller, and needs the kick handler
        (kick.install_kick_handler) installed."""
        with self._lock:
            if self._mmap is None:
                return
            self.u8[IMMEDIATE_EXIT_OFFSET] = 1
            thread = self._thread
            if thread is not None and thread != threading.get_ident():
                send_kick(thread)

    # --- lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        with self._lock:
            mm, self._mmap = self._mmap, None
            self._thread = None
        if mm is not None:
            for view in (self.u64, self.u32, self.u16, self.u8):
                view.release()
            try:
                mm.close()
            except BufferError:
                pass        # someone still holds a view; the mapping goes when they drop it
        self.close_fd()
