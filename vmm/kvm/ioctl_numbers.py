"""KVM ioctl request numbers, encoded from linux/kvm.h's definitions (never pasted hex)."""
import ctypes

from .ioctl import KVMIO, _IO, _IOR, _IOW, _IOWR
from .structs import (KvmCpuid2, KvmDeviceAttr, KvmDirtyLog, KvmFpu, KvmGuestDebug, KvmIrqchip, KvmIrqLevel,
                      KvmLapicState, KvmMpState, KvmMsrs, KvmPitConfig, KvmPitState2, KvmRegs, KvmSregs,
                      KvmTranslation, KvmUserspaceMemoryRegion, KvmVcpuEvents, KvmXsave)

# System ioctls (on the /dev/kvm fd)
KVM_GET_API_VERSION = _IO(KVMIO, 0x00)
KVM_CREATE_VM = _IO(KVMIO, 0x01)
KVM_CHECK_EXTENSION = _IO(KVMIO, 0x03)
KVM_GET_VCPU_MMAP_SIZE = _IO(KVMIO, 0x04)
KVM_GET_SUPPORTED_CPUID = _IOWR(KVMIO, 0x05, KvmCpuid2)

# VM ioctls
KVM_CREATE_VCPU = _IO(KVMIO, 0x41)
KVM_SET_USER_MEMORY_REGION = _IOW(KVMIO, 0x46, KvmUserspaceMemoryRegion)
KVM_SET_TSS_ADDR = _IO(KVMIO, 0x47)
KVM_SET_IDENTITY_MAP_ADDR = _IOW(KVMIO, 0x48, ctypes.c_uint64)
KVM_CREATE_IRQCHIP = _IO(KVMIO, 0x60)                           # KVM_CAP_IRQCHIP
KVM_IRQ_LINE = _IOW(KVMIO, 0x61, KvmIrqLevel)
KVM_GET_IRQCHIP = _IOWR(KVMIO, 0x62, KvmIrqchip)
KVM_SET_IRQCHIP = _IOR(KVMIO, 0x63, KvmIrqchip)                 # (sic: _IOR in linux/kvm.h)
KVM_CREATE_PIT2 = _IOW(KVMIO, 0x77, KvmPitConfig)               # KVM_CAP_PIT2
KVM_GET_PIT2 = _IOR(KVMIO, 0x9F, KvmPitState2)
KVM_SET_PIT2 = _IOW(KVMIO, 0xA0, KvmPitState2)
KVM_GET_DIRTY_LOG = _IOW(KVMIO, 0x42, KvmDirtyLog)
KVM_GET_STATS_FD = _IO(KVMIO, 0xCE)     # on a VM or a vCPU fd (KVM_CAP_BINARY_STATS_FD)

# vCPU ioctls
KVM_RUN = _IO(KVMIO, 0x80)
KVM_GET_REGS = _IOR(KVMIO, 0x81, KvmRegs)
KVM_SET_REGS = _IOW(KVMIO, 0x82, KvmRegs)
KVM_GET_SREGS = _IOR(KVMIO, 0x83, KvmSregs)
KVM_SET_SREGS = _IOW(KVMIO, 0x84, KvmSregs)
KVM_TRANSLATE = _IOWR(KVMIO, 0x85, KvmTranslation)
KVM_GET_MSRS = _IOWR(KVMIO, 0x88, KvmMsrs)
KVM_SET_MSRS = _IOW(KVMIO, 0x89, KvmMsrs)
KVM_GET_FPU = _IOR(KVMIO, 0x8C, KvmFpu)
KVM_SET_FPU = _IOW(KVMIO, 0x8D, KvmFpu)
KVM_GET_XSAVE = _IOR(KVMIO, 0xA4, KvmXsave)                    # KVM_CAP_XSAVE
KVM_SET_XSAVE = _IOW(KVMIO, 0xA5, KvmXsave)
KVM_GET_LAPIC = _IOR(KVMIO, 0x8E, KvmLapicState)       # with the in-kernel irqchip
KVM_SET_LAPIC = _IOW(KVMIO, 0x8F, KvmLapicState)
KVM_SET_CPUID2 = _IOW(KVMIO, 0x90, KvmCpuid2)
KVM_GET_CPUID2 = _IOWR(KVMIO, 0x91, KvmCpuid2)
KVM_GET_MP_STATE = _IOR(KVMIO, 0x98, KvmMpState)
KVM_SET_MP_STATE = _IOW(KVMIO, 0x99, KvmMpState)
KVM_SET_GUEST_DEBUG = _IOW(KVMIO, 0x9B, KvmGuestDebug)     # KVM_CAP_SET_GUEST_DEBUG
KVM_GET_TSC_KHZ = _IO(KVMIO, 0xA3)      # a vCPU ioctl since Linux 4.x (KVM_CAP_GET_TSC_KHZ)
KVM_SET_TSC_KHZ = _IO(KVMIO, 0xA2)      # KVM_CAP_TSC_CONTROL
KVM_GET_VCPU_EVENTS = _IOR(KVMIO, 0x9F, KvmVcpuEvents)       # KVM_CAP_VCPU_EVENTS
KVM_SET_VCPU_EVENTS = _IOW(KVMIO, 0xA0, KvmVcpuEvents)
KVM_SET_DEVICE_ATTR = _IOW(KVMIO, 0xE1, KvmDeviceAttr)       # on a vCPU: KVM_CAP_VCPU_ATTRIBUTES
KVM_GET_DEVICE_ATTR = _IOW(KVMIO, 0xE2, KvmDeviceAttr)
KVM_HAS_DEVICE_ATTR = _IOW(KVMIO, 0xE3, KvmDeviceAttr)
