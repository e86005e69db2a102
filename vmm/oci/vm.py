"""The VM mode (annotation org.pyvmm.runtime=vm, or vmm-oci-vm): placeholder until `vmm run --rootfs`."""
from .errors import ContainerUnavailable


def create_vm(runtime, container_id, spec, **options):
    raise ContainerUnavailable("the VM mode needs `vmm run --rootfs` (issue 13), which is not in this build")


def unavailable_reason() -> str | None:
    """Why the VM mode cannot run here, or None (for `vmm bench startup`)."""
    return "the VM mode needs `vmm run --rootfs` (issue 13), which is not in this build"
