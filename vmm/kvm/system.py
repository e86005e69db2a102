"""Kvm: the /dev/kvm handle (system ioctls)."""
import errno
import os

from ..errors import AcceleratorUnavailable
from . import constants as c
from . import ioctl_numbers as r
from .ioctl import FdOwner, KvmError, ioctl
from .structs import cpuid2_class

# VMM_KVM_DEVICE names another device node: the tests use it to see what a VMM does when
# /dev/kvm is missing or is not KVM at all.
KVM_DEVICE = os.environ.get("VMM_KVM_DEVICE", "/dev/kvm")

_OPEN_ERRORS = {
    errno.ENOENT: "{path} does not exist (KVM not available on this host)",
    errno.EACCES: "permission denied opening {path} (add yourself to the kvm group)",
    errno.EPERM: "permission denied opening {path} (add yourself to the kvm group)",
    errno.ENXIO: "{path} has no driver behind it (the kvm module is not loaded)",
    errno.ENODEV: "{path} has no driver behind it (the kvm module is not loaded)",
    errno.EBUSY: "{path} is busy (another hypervisor holds the virtualisation extensions)",
}

MAX_CPUID_ENTRIES = 1024        # the kernel's KVM_MAX_CPUID_ENTRIES is 256; E2BIG grows up to this


def open_kvm_device(path: str = KVM_DEVICE) -> int:
    """os.open /dev/kvm, or AcceleratorUnavailable with a one-line reason."""
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as e:
        reason = _OPEN_ERRORS.get(e.errno, "cannot open {path}: {error}")
        raise AcceleratorUnavailable(reason.format(path=path, error=e.strerror)) from None


class Kvm(FdOwner):
    """The KVM subsystem: checks the API version and the capabilities the VMM relies on."""

    def __init__(self, path: str = KVM_DEVICE, required=c.REQUIRED_CAPABILITIES):
        self.fd = open_kvm_device(path)
        try:
            version = ioctl(self.fd, r.KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION")
            if version != c.KVM_API_VERSION:
                raise AcceleratorUnavailable(
                    f"KVM API version {version} is not the supported {c.KVM_API_VERSION}")
            for cap in required:
                self.require(cap)
            self.vcpu_mmap_size = ioctl(self.fd, r.KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE")
        except BaseException:
            self.close()
            raise

    def check_extension(self, cap: int) -> int:
        """KVM_CHECK_EXTENSION: 0 if absent, else a positive (sometimes meaningful) value."""
        return ioctl(self.fd, r.KVM_CHECK_EXTENSION, cap, "KVM_CHECK_EXTENSION")

    def require(self, cap: int) -> int:
        value = self.check_extension(cap)
        if value <= 0:
            name = c.CAPABILITY_NAMES.get(cap, f"capability {cap}")
            raise AcceleratorUnavailable(f"KVM on this host lacks {name}, which the VMM needs")
        return value

    _supported_cpuid = None             # a host property: asked once per process

    def supported_cpuid(self) -> list:
        """KVM_GET_SUPPORTED_CPUID: a list of KvmCpuidEntry2 (the caller must not change them),
        asked once per process, growing the buffer on E2BIG."""
        if Kvm._supported_cpuid is None:
            Kvm._supported_cpuid = self._ask_supported_cpuid()
        return Kvm._supported_cpuid

    def _ask_supported_cpuid(self) -> list:
        count = 64
        while True:
            buf = cpuid2_class(count)()
            buf.nent = count
            try:
                ioctl(self.fd, r.KVM_GET_SUPPORTED_CPUID, buf, "KVM_GET_SUPPORTED_CPUID")
            except KvmError as e:
                if e.errno == errno.E2BIG and count < MAX_CPUID_ENTRIES:
                    count *= 2
                    continue
                raise
            return [_copy(entry) for entry in buf.entries[:buf.nent]]

    def create_vm(self):
        from .vm import Vm
        fd = ioctl(self.fd, r.KVM_CREATE_VM, 0, "KVM_CREATE_VM")
        return Vm(self, fd)



def _copy(struct):
    return type(struct).from_buffer_copy(struct)
