"""A ctypes binding of the Linux KVM API: the only place with KVM structs and ioctls.

    Kvm()                 /dev/kvm: API version, capabilities, supported CPUID
      .create_vm() -> Vm  memory regions, TSS address, in-kernel irqchip and PIT, vCPUs
        .irq_line(gsi) -> KvmIrqLine   an interrupt input: line(level), KVM_IRQ_LINE
        .create_vcpu() -> Vcpu   registers, MSRs, CPUID, FPU, KVM_RUN and its kvm_run page
    stats.Stats(fd)       a VM's or vCPU's binary statistics (KVM_GET_STATS_FD), by name

Errors: opening /dev/kvm or a missing capability raises errors.AcceleratorUnavailable; a
failed ioctl raises KvmError, whose message names the ioctl and the errno.
"""
from .ioctl import KvmError
from .kick import install_kick_handler, kick_handler_installed
from .system import Kvm
from .vcpu import Vcpu
from .vm import Vm

__all__ = ["Kvm", "Vm", "Vcpu", "KvmError", "install_kick_handler", "kick_handler_installed"]
