"""`features` (runtime-spec features.md: what this runtime recognises) and `spec` (a default config).

The features structure is what the code supports, not what this host offers (the spec asks for
that), except seccomp's "enabled", which says whether libseccomp can be loaded here at all.
"""
import json
import os

from ..container import capabilities, mounts, seccomp
from .errors import ContainerUnavailable, UsageError, VmmError
from .modes import MODE_ANNOTATION, MODES
from .spec import HOOK_KINDS, REFUSED_NAMESPACES
from ..container.namespaces import OCI_TYPES

OCI_VERSION_MIN, OCI_VERSION_MAX = "1.0.0", "1.2.0"


def features() -> dict:
    try:
        seccomp.available()
        seccomp_enabled = True
    except ContainerUnavailable:
        seccomp_enabled = False
    flags = sorted(seccomp.FLAG_ATTRIBUTES)
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": list(HOOK_KINDS),
        "mountOptions": sorted(set(mounts.FLAGS) | set(mounts.PROPAGATION) | set(mounts.RECURSIVE) | {"tmpcopyup"}),
        "linux": {
            "namespaces": sorted(kind for kind in OCI_TYPES if kind not in REFUSED_NAMESPACES),
            "capabilities": list(capabilities.NAMES),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": seccomp_enabled, "actions": sorted(seccomp.ACTIONS),
                        "operators": sorted(seccomp.OPERATORS), "archs": sorted(seccomp.ARCHES),
                        "knownFlags": flags, "supportedFlags": flags},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": {MODE_ANNOTATION: "|".join(MODES), "org.pyvmm.runtime.name": "vmm-oci"},
        "potentiallyUnsafeConfigAnnotations": [MODE_ANNOTATION],
    }


DEFAULT_CAPABILITIES = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]


def default_spec() -> dict:
    """runc's default config (`runc spec`): sh in a busybox-like root, the usual mounts."""
    nosuid = ["nosuid", "noexec", "nodev"]
    return {
        "ociVersion": OCI_VERSION_MAX,
        "process": {"terminal": True, "user": {"uid": 0, "gid": 0}, "args": ["sh"],
                    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
                    "cwd": "/", "capabilities": {kind: DEFAULT_CAPABILITIES for kind in ("bounding", "effective",
                                                                                          "permitted")},
                    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
                    "noNewPrivileges": True},
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "vmm-oci",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": nosuid + ["mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nosuid},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": nosuid + ["ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": nosuid + ["relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [{"allow": False, "access": "rwm"}]},
            "namespaces": [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                            "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


def write_default_spec(bundle: str) -> None:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "x") as file:
            json.dump(default_spec(), file, indent=2)
    except FileExistsError:
        raise UsageError(f"{path} exists already; remove it first") from None
    except OSError as error:
        raise VmmError(f"cannot write {path}: {error.strerror}") from None
