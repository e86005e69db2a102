"""Containers for the VM-versus-container start-up comparison, and the Linux mechanisms of the
OCI runtime (vmm/oci): namespaces, mounts, devices, cgroups, capabilities, seccomp, ptys.

    run_container(rootfs, argv, memory=None, cpu_shares=None, hostname="container") -> exit status
    build_rootfs(directory, programs) -> Path
    probe() -> None, or why containers cannot run here

Modules: namespaces, cgroups (v2/v1 detection and limits), rootfs (entering and building a
root file system), launcher (run_container), errors; for the OCI runtime also mounts,
paths_in_root, devices, cgroupfs, cgroup_limits, capabilities, seccomp, pty. Their system calls
are in vmm/host/ (container_calls, process, tty, seccomp). The API is imported lazily: `vmm-oci`
runs once per container operation, and needs only a part.
"""
__all__ = ["run_container", "build_rootfs", "probe", "ContainerUnavailable", "ContainerTerminated"]

_EXPORTS = {"run_container": "launcher", "build_rootfs": "rootfs", "probe": "namespaces",
            "ContainerUnavailable": "errors", "ContainerTerminated": "errors"}


def __getattr__(name):
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'vmm.container' has no attribute {name!r}")
