"""Vm: one KVM virtual machine (VM ioctls)."""
import ctypes
import os

from . import constants as c
from . import requests as r
from .ioctl import ioctl
from .structs import KvmUserspaceMemoryRegion


class Vm:
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

    def set_user_memory_region(self, slot: int, guest_phys_addr: int, memory_size: int,
                               userspace_addr: int, flags: int = 0) -> None:
        region = KvmUserspaceMemoryRegion(slot=slot, flags=flags, guest_phys_addr=guest_phys_addr,
                                          memory_size=memory_size, userspace_addr=userspace_addr)
        ioctl(self.fd, r.KVM_SET_USER_MEMORY_REGION, region, "KVM_SET_USER_MEMORY_REGION")

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
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
