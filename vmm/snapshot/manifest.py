"""The snapshot's manifest: one JSON file that says what the snapshot is and holds every
piece of state but guest RAM.

    {"format": "pyvmm-snapshot", "version": 1, "checksum": "sha256:...",
     "created": ISO time, "engine": "kvm" | "unicorn",
     "machine": the configuration a restore rebuilds (mem_size, disks with size and mtime,
                the kernel and program it booted, the CPUID table the guest saw),
     "vcpu": arch/x86/cpu_snapshot.py, "platform": PIC, PIT, LAPIC, IOAPIC (devices/state.py),
     "devices": {"uart": {"version": 1, "state": ...}, ..., "virtio": [...], "irq_lines": {gsi: level}},
     "memory": {"file": "memory", "size": bytes, "base": null | {"path", "checksum"},
                "ranges": null | [[first page, pages], ...], "roms": [{"gpa", "file", "size"}]}}

The checksum is the SHA-256 of the canonical JSON of everything else (sorted keys, no
spaces), so a manifest that was cut short, edited or damaged is refused, not half-loaded.
Like Firecracker's per-device versions (vmm/src/persist.rs), the file has a format version
and each device state its own: a newer one than this VMM knows is refused with both
numbers. Version 1 is the first; a later VMM that can still read it says so here.
"""
import hashlib
import json
import os

from ..errors import ImageError, InputError
from ..user_files import read_input

FORMAT = "pyvmm-snapshot"
VERSION = 1
MANIFEST = "manifest.json"
MEMORY = "memory"
FW_CFG = "fw_cfg"
MAX_MANIFEST_BYTES = 64 << 20           # far above any real one (fw_cfg items live in their own file)


class SnapshotError(ImageError):
    """A snapshot that cannot be restored: corrupt, truncated, newer than this VMM, or for
    disks that changed. One line for the user (exit status 65, as a malformed image)."""


def checksum(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def write(directory: str, body: dict) -> str:
    """Write the manifest (atomically: a temporary file renamed over it); returns its checksum."""
    body = dict(body, format=FORMAT, version=VERSION)
    body.pop("checksum", None)
    digest = checksum(body)
    path = os.path.join(directory, MANIFEST)
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(dict(body, checksum=digest), f, sort_keys=True, indent=1)
        f.write("\n")
    os.replace(temporary, path)
    return digest


def read(directory: str) -> dict:
    """The verified manifest of the snapshot in `directory`. InputError if it is missing;
    SnapshotError if it is not a snapshot this VMM can read."""
    path = os.path.join(directory, MANIFEST)
    if not os.path.isdir(directory):
        raise InputError(f"snapshot {directory} does not exist or is not a directory")
    if not os.path.lexists(path):
        raise SnapshotError(f"snapshot {directory} has no {MANIFEST}: not a snapshot, or one cut short")
    raw = read_input(path, "snapshot manifest", MAX_MANIFEST_BYTES,     # a regular file, never a FIFO
                     f"any snapshot manifest ({MAX_MANIFEST_BYTES >> 20} MiB)", too_big=SnapshotError)
    try:
        manifest = json.loads(raw)
    except (ValueError, RecursionError):
        raise SnapshotError(f"{path} is not valid JSON: the snapshot is corrupt or truncated") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not a pyvmm snapshot manifest")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise SnapshotError(f"{path} has no format version")
    if version > VERSION:
        raise SnapshotError(f"snapshot format version {version} is newer than this VMM's ({VERSION}): "
                            "restore it with a newer pyvmm")
    body = {key: value for key, value in manifest.items() if key != "checksum"}
    if manifest.get("checksum") != checksum(body):
        raise SnapshotError(f"{path} does not match its checksum: the snapshot is corrupt")
    return manifest


def device_entry(name: str, version: int, state) -> dict:
    return {"version": version, "state": state}


def device_state(devices: dict, name: str, supported: int):
    """The state of device `name`, refused if missing or saved by a newer model."""
    entry = devices.get(name) if isinstance(devices, dict) else None
    if not isinstance(entry, dict) or "state" not in entry:
        raise SnapshotError(f"the snapshot has no state for the {name} device")
    version = entry.get("version")
    if not isinstance(version, int) or version > supported:
        raise SnapshotError(f"the snapshot's {name} state has version {version}; this VMM reads up to {supported}")
    return entry["state"]
