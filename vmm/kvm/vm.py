"""Vm: one KVM virtual machine (VM ioctls), and KvmIrqLine, an interrupt input of its irqchip."""
import ctypes
import os

from . import constants as c
from . import ioctl_numbers as r
from .ioctl import FdOwner, KvmError, get_errno, ioctl, raw_ioctl
from .structs import (KvmDirtyLog, KvmIrqchip, KvmIrqLevel, KvmPicState, KvmPitConfig, KvmPitState2,
                      KvmUserspaceMemoryRegion)


class Vm(FdOwner):
    """Created by Kvm.create_vm(). Owns the vCPUs it creates: close() closes them too."""

    def __init__(self, kvm, fd: int):
        self.kvm = kvm
        self.fd = fd
        self.vcpus = []

    def set_tss_addr(self, addr: int) -> None:
        """KVM_SET_TSS_ADDR: three pages of guest-physical space the guest never uses
        (Intel VMX needs them to run real-mode code)."""
        ioctl(self.fd, r.KVM_SET_TSS_ADDR, addr, "KVM_SET_TSS_ADDR")

    def set_identity_map_addr(self, addr: int) -> bool:
        """KVM_SET_IDENTITY_MAP_ADDR if KVM has it (one page, VMX without unrestricted
        guest); returns whether it was set."""
        if self.kvm.check_extension(c.KVM_CAP_SET_IDENTITY_MAP_ADDR) <= 0:
            return False
        value = ctypes.c_uint64(addr)
        ioctl(self.fd, r.KVM_SET_IDENTITY_MAP_ADDR, value, "KVM_SET_IDENTITY_MAP_ADDR")
        return True

    def get_tsc_khz(self) -> int:
        """KVM_GET_TSC_KHZ on the VM: the rate its vCPUs' TSCs will count at (a VM ioctl since
        Linux 6.0; before, KvmError with ENOTTY, and only a vCPU answers)."""
        return ioctl(self.fd, r.KVM_GET_TSC_KHZ, 0, "KVM_GET_TSC_KHZ")

    def set_user_memory_region(self, slot: int, guest_phys_addr: int, memory_size: int,
                               userspace_addr: int, flags: int = 0) -> None:
        region = KvmUserspaceMemoryRegion(slot=slot, flags=flags, guest_phys_addr=guest_phys_addr,
                                          memory_size=memory_size, userspace_addr=userspace_addr)
        ioctl(self.fd, r.KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")

    # --- the in-kernel interrupt controllers and timer ------------------------------------------
    def create_irqchip(self) -> None:
        """KVM_CREATE_IRQCHIP (before any vCPU): the 8259A pair (ports 0x20-0x21, 0xA0-0xA1,
        ELCR at 0x4D0-0x4D1), an IOAPIC at 0xFEC00000 and, per vCPU, a local APIC at
        0xFEE00000, all emulated by KVM. GSIs 0-15 go to the PIC inputs and the IOAPIC pins
        of the same number, GSIs 16-23 to the IOAPIC only (KVM's default routing). With it,
        KVM also keeps HLT to itself: a halted vCPU sleeps inside KVM_RUN until an interrupt."""
        self.kvm.require(c.KVM_CAP_IRQCHIP)
        ioctl(self.fd, r.KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP")

    def create_pit2(self, flags: int = 0) -> None:
        """KVM_CREATE_PIT2 (after create_irqchip): an 8254 at ports 0x40-0x43 whose channel 0
        drives GSI 0 from a host timer. flags KVM_PIT_SPEAKER_DUMMY: KVM also answers port
        0x61 (channel 2's gate and output, what a PIT-calibrating guest polls)."""
        self.kvm.require(c.KVM_CAP_PIT2)
        ioctl(self.fd, r.KVM_CREATE_PIT2, KvmPitConfig(flags=flags), "KVM_CREATE_PIT2")

    def irq_line(self, gsi: int) -> "KvmIrqLine":
        """The interrupt input `gsi` of the in-kernel irqchip, as a callable `line(level)`."""
        return KvmIrqLine(self, gsi)

    def get_pic_state(self, chip: int) -> KvmPicState:
        """KVM_GET_IRQCHIP of the master (KVM_IRQCHIP_PIC_MASTER) or slave 8259A."""
        state = KvmIrqchip(chip_id=chip)
        ioctl(self.fd, r.KVM_GET_IRQCHIP, state, "KVM_GET_IRQCHIP")
        return KvmPicState.from_buffer_copy(state.chip.pic)

    def get_irqchip(self, chip: int) -> KvmIrqchip:
        """KVM_GET_IRQCHIP: one chip's state (constants.KVM_IRQCHIP_*), decoded through
        .chip.pic or .chip.ioapic."""
        state = KvmIrqchip(chip_id=chip)
        ioctl(self.fd, r.KVM_GET_IRQCHIP, state, "KVM_GET_IRQCHIP")
        return state

    def set_irqchip(self, state: KvmIrqchip) -> None:
        ioctl(self.fd, r.KVM_SET_IRQCHIP, state, "KVM_SET_IRQCHIP")

    def get_pit2(self) -> KvmPitState2:
        state = KvmPitState2()
        ioctl(self.fd, r.KVM_GET_PIT2, state, "KVM_GET_PIT2")
        return state

    def set_pit2(self, state: KvmPitState2) -> None:
        """KVM_SET_PIT2: KVM reloads every channel's count at once, so channel 0's period
        restarts now (count_load_time is not taken from `state`)."""
        ioctl(self.fd, r.KVM_SET_PIT2, state, "KVM_SET_PIT2")

    def get_dirty_log(self, slot: int, pages: int) -> bytes:
        """KVM_GET_DIRTY_LOG of a slot made with KVM_MEM_LOG_DIRTY_PAGES: one bit per page
        the guest wrote since the last call (which it also clears)."""
        bitmap = (ctypes.c_uint64 * ((pages + 63) // 64))()
        log = KvmDirtyLog(slot=slot, dirty_bitmap=ctypes.addressof(bitmap))
        ioctl(self.fd, r.KVM_GET_DIRTY_LOG, log, "KVM_GET_DIRTY_LOG")
        return bytes(bitmap)

    def create_vcpu(self, vcpu_id: int = 0):
        from .vcpu import Vcpu
        fd = ioctl(self.fd, r.KVM_CREATE_VCPU, vcpu_id, "KVM_CREATE_VCPU")
        try:
            vcpu = Vcpu(fd, self.kvm.vcpu_mmap_size)
        except BaseException:
            os.close(fd)
            raise
        self.vcpus.append(vcpu)
        return vcpu

    def close(self) -> None:
        for vcpu in self.vcpus:
            vcpu.close()
        self.vcpus.clear()
        self.close_fd()


class KvmIrqLine:
    """One interrupt input (GSI) of the in-kernel irqchip: `line(True)` raises it and
    `line(False)` lowers it, with KVM_IRQ_LINE. Callable from any thread (a VM ioctl, which
    KVM serialises with its irqchip lock; it wakes a halted vCPU by itself).

    Edge or level is the guest's choice, not ours: the PIC's inputs are edge-triggered
    unless the guest sets their ELCR bit (ports 0x4D0/0x4D1), the IOAPIC's per redirection
    entry. An edge is a raise after a lower: `pulse()` does both. A level input's request
    follows the line: keep it raised until the device is serviced. Devices that report
    their interrupt output level (the UART, virtio-mmio) suit both: each change is passed on.

    Each call is one ioctl on two preallocated, read-only structs: no allocation, no lock.
    After the VM is closed, calls do nothing."""
    __slots__ = ("gsi", "_vm", "_raise", "_lower", "_raise_addr", "_lower_addr")

    def __init__(self, vm: Vm, gsi: int):
        self.gsi = gsi
        self._vm = vm
        self._raise = KvmIrqLevel(irq=gsi, level=1)
        self._lower = KvmIrqLevel(irq=gsi, level=0)
        self._raise_addr = ctypes.addressof(self._raise)
        self._lower_addr = ctypes.addressof(self._lower)

    def __call__(self, level) -> None:
        fd = self._vm.fd
        if fd >= 0 and raw_ioctl(fd, r.KVM_IRQ_LINE, self._raise_addr if level else self._lower_addr) < 0:
            raise KvmError(f"KVM_IRQ_LINE (GSI {self.gsi})", get_errno())

    def pulse(self) -> None:
        """An edge: raise, then lower."""
        self(True)
        self(False)

    def __repr__(self) -> str:
        return f"KvmIrqLine(gsi={self.gsi})"


def bare_real_mode_vcpu(vm: Vm, memory, tss_addr: int):
    """For the probes and benchmarks that drive KVM without the engine: `memory` (a
    GuestMemory) as slot 0, the TSS pages at `tss_addr`, and vCPU 0 in real mode with a CS
    base of 0, so that RIP is the code's guest-physical address."""
    vm.set_tss_addr(tss_addr)
    vm.set_user_memory_region(0, 0, memory.size, memory.host_address)
    vcpu = vm.create_vcpu(0)
    sregs = vcpu.get_sregs()
    sregs.cs.base, sregs.cs.selector = 0, 0
    vcpu.set_sregs(sregs)
    return vcpu
