"""Device nodes in a container's /dev, and the device cgroup rules that go with them.

The runtime-spec's default devices (config-linux.md "Default Devices") plus the config's
`linux.devices` are created with mknod(2) inside the root file system, with their mode and owner
(in a user namespace, where mknod is refused, the host's node is bound there instead, as runc does);
a node that already exists is accepted only if it is the same kind of device with the same
numbers (the spec: "If a file already exists at path that does not match the requested device,
the runtime MUST generate an error"). Then runc's symlinks: /dev/fd, /dev/std{in,out,err},
/dev/ptmx -> pts/ptmx, /dev/core. Numbers are from the kernel's Documentation/admin-guide/devices.txt.

DEFAULT_RULES is runc's list of device-cgroup rules appended after the config's own
(libcontainer/specconv AllowedDevices): mknod of any device, and read/write of the default
nodes, the ptys and /dev/net/tun.
"""
import os
import stat
from collections import namedtuple

from ..host import container_calls as libc
from . import paths_in_root

# kind: "c", "b", "p" (fifo) or "u" (unbuffered char, as c); mode: permission bits
Device = namedtuple("Device", "path kind major minor mode uid gid")
# allow: bool; kind: "a", "c" or "b"; major/minor: int or None for any; access: "rwm" subset
Rule = namedtuple("Rule", "allow kind major minor access")

DEFAULT_DEVICES = (
    Device("/dev/null", "c", 1, 3, 0o666, 0, 0),
    Device("/dev/zero", "c", 1, 5, 0o666, 0, 0),
    Device("/dev/full", "c", 1, 7, 0o666, 0, 0),
    Device("/dev/random", "c", 1, 8, 0o666, 0, 0),
    Device("/dev/urandom", "c", 1, 9, 0o666, 0, 0),
    Device("/dev/tty", "c", 5, 0, 0o666, 0, 0),
)
DEFAULT_RULES = (
    Rule(True, "c", None, None, "m"),
    Rule(True, "b", None, None, "m"),
    Rule(True, "c", 1, 3, "rwm"),
    Rule(True, "c", 1, 8, "rwm"),
    Rule(True, "c", 1, 7, "rwm"),
    Rule(True, "c", 5, 0, "rwm"),
    Rule(True, "c", 1, 5, "rwm"),
    Rule(True, "c", 1, 9, "rwm"),
    Rule(True, "c", 136, None, "rwm"),      # /dev/pts/*
    Rule(True, "c", 5, 2, "rwm"),           # /dev/ptmx
    Rule(True, "c", 10, 200, "rwm"),        # /dev/net/tun
)
SYMLINKS = (("/proc/self/fd", "/dev/fd"), ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"), ("/proc/self/fd/2", "/dev/stderr"))
_KIND_BITS = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}


def with_defaults(devices) -> list:
    """The config's devices, then each default device whose path the config does not give."""
    given = {device.path for device in devices}
    return list(devices) + [device for device in DEFAULT_DEVICES if device.path not in given]


def create(root: str, device: Device) -> None:
    """mknod one device inside ROOT (or accept the same device already there)."""
    parent = os.path.dirname(device.path) or "/"
    paths_in_root.mkdir_all(root, parent)
    host = paths_in_root.resolve_parent(root, device.path)
    kind_bits = _KIND_BITS[device.kind]
    rdev = os.makedev(device.major, device.minor) if device.kind != "p" else 0
    try:
        os.mknod(host, kind_bits | (device.mode & 0o7777), rdev)
    except PermissionError:
        _bind_from_host(host, device, kind_bits, rdev)     # in a user namespace mknod is not allowed
        return
    except FileExistsError:
        found = os.lstat(host)
        if stat.S_IFMT(found.st_mode) != kind_bits or (device.kind != "p" and found.st_rdev != rdev):
            raise FileExistsError(17, f"{device.path} exists in the root file system and is not the device "
                                      f"{device.kind} {device.major}:{device.minor} the config asks for",
                                  device.path) from None
        return
    os.chmod(host, device.mode & 0o7777)        # mknod's mode is filtered by the umask
    os.chown(host, device.uid, device.gid, follow_symlinks=False)


def create_symlinks(root: str) -> None:
    links = list(SYMLINKS) + [("pts/ptmx", "/dev/ptmx")]
    if os.path.exists("/proc/kcore"):
        links.append(("/proc/kcore", "/dev/core"))
    for target, path in links:
        host = paths_in_root.resolve_parent(root, path)
        if os.path.lexists(host):
            if path == "/dev/ptmx" and not os.path.islink(host):
                os.unlink(host)         # a ptmx node of the image would be the host's pty instance
            else:
                continue
        os.symlink(target, host)


def _bind_from_host(host: str, device: Device, kind_bits: int, rdev: int) -> None:
    """runc's way in a user namespace: bind the host's own node, at the same path, over an empty file."""
    try:
        found = os.stat(device.path)
    except OSError:
        found = None
    if found is None or stat.S_IFMT(found.st_mode) != kind_bits or found.st_rdev != rdev:
        raise PermissionError(1, f"cannot create device {device.path} in a user namespace, and the host has no "
                                 f"such node to bind", device.path)
    if not os.path.lexists(host):
        os.close(os.open(host, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
    libc.mount(device.path, host, None, libc.MS_BIND)
