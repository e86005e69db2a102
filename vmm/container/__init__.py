"""Containers for the VM-versus-container start-up comparison: namespaces, cgroups, pivot_root.

    run_container(rootfs, argv, memory=None, cpu_shares=None, hostname="container") -> exit status
    build_rootfs(directory, programs) -> Path
    probe() -> None, or why containers cannot run here

Modules: namespaces, cgroups (v2/v1 detection and limits), rootfs (entering and building a
root file system), launcher (run_container), errors. Their system calls are in
vmm/host/container_calls.py.
"""
from .errors import ContainerTerminated, ContainerUnavailable
from .launcher import run_container
from .namespaces import probe
from .rootfs import build_rootfs

__all__ = ["run_container", "build_rootfs", "probe", "ContainerUnavailable", "ContainerTerminated"]
