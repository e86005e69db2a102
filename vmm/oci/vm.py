"""The VM mode (annotation org.pyvmm.runtime=vm, or vmm-oci-vm): placeholder until `vmm run --rootfs`."""
from .errors import ContainerUnavailable


def create_vm(runtime, container_id, spec, **options):
    raise ContainerUnavailable("the VM mode needs `vmm run --rootfs` (issue 13), which is not in this build")
