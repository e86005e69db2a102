"""Saving a running VM (Machine.snapshot): pause it, capture every piece of state into the
manifest (manifest.py), write guest RAM (memory_file.py), and resume it.

Where a snapshot goes: a directory, written whole under a temporary name beside it and then
renamed into place, so that a snapshot at `path` is always complete. Saving to a path that
holds a snapshot replaces it; a VM restored from the old one keeps its memory mapped (the
file lives on until that VM ends), because files are replaced, never written in place.

With dirty tracking (track_dirty_pages, KVM only), each snapshot after the first is a diff:
only the pages written since the previous snapshot of this VM (KVM's dirty log for the
guest's writes, HostWriteLog for the VMM's), on top of that previous snapshot, which must
then stay where it is. Saving again to the previous snapshot's own path writes a full one.
"""
import datetime
import os
import shutil
import threading
import time
from dataclasses import dataclass

from ..errors import VmmError
from . import manifest as mf
from .memory_file import HostWriteLog, merge_bitmaps, ranges_from_bitmap, write_full, write_pages

VCPU_VERSION = 1
PLATFORM_VERSION = 1


@dataclass
class SavedSnapshot:
    path: str
    memory_bytes: int           # bytes of RAM data written (holes and unchanged pages excluded)
    seconds: float              # pause to resume
    diff: bool                  # only the pages changed since `base` were written
    base: str | None = None


class Snapshots:
    """One machine's snapshots: the lock that serialises them, and the dirty-page state."""

    def __init__(self, machine):
        self.machine = machine
        self._lock = threading.Lock()
        self._host_log = None
        self._previous = None           # (path, checksum) of the last snapshot, the next diff's base

    def track_dirty_pages(self) -> None:
        if self._host_log is None:
            self.machine.engine.track_dirty_pages()
            self._host_log = HostWriteLog(self.machine.memory)

    def take(self, path: str, full: bool = False) -> SavedSnapshot:
        machine = self.machine
        path = os.path.abspath(path)
        with self._lock:
            started = time.monotonic()
            was_paused = machine.gate.paused
            machine.gate.pause()
            try:
                saved = self._save(path, full)
            finally:
                if not was_paused:
                    machine.gate.resume()
            saved.seconds = time.monotonic() - started
            return saved

    def _save(self, path: str, full: bool) -> SavedSnapshot:
        machine = self.machine
        _check_replaceable(path)
        body = capture(machine)
        staging = _staging_directory(path)
        try:
            diff = self._host_log is not None and self._previous is not None and not full \
                and self._previous[0] != path and os.path.isdir(self._previous[0])
            memory_path = os.path.join(staging, mf.MEMORY)
            if self._host_log is not None:
                dirty = merge_bitmaps(machine.engine.dirty_pages(), self._host_log.take())
            if diff:
                ranges = ranges_from_bitmap(dirty, machine.memory.size // 4096)
                written = write_pages(machine.memory, memory_path, ranges)
                base = {"path": os.path.relpath(self._previous[0], os.path.dirname(path)),
                        "checksum": self._previous[1]}
            else:
                written = write_full(machine.memory, memory_path)
                ranges, base = None, None
            body["memory"] = {"file": mf.MEMORY, "size": machine.memory.size, "base": base, "ranges": ranges,
                              "roms": _write_roms(machine.memory, staging)}
            if machine.fw_cfg is not None:
                with open(os.path.join(staging, mf.FW_CFG), "wb") as f:
                    f.write(machine.fw_cfg.items_blob())
            digest = mf.write(staging, body)
            _replace(staging, path)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self._previous = (path, digest)
        return SavedSnapshot(path, written, 0.0, diff, base["path"] if diff else None)

    def close(self) -> None:
        if self._host_log is not None:
            self._host_log.close()
            self._host_log = None


def capture(machine) -> dict:
    """Everything but RAM, as the manifest holds it (the VM is paused or not running)."""
    engine, config = machine.engine, machine.config
    for block in machine.virtio_transports:
        fd = getattr(block.device, "fd", -1)
        if fd >= 0 and not block.device.read_only:
            os.fsync(fd)                        # the disk as the snapshot knows it, on disk
    devices = {"uart": mf.device_entry("uart", machine.uart.STATE_VERSION, machine.uart.save_state())}
    for name, device in machine.board_devices.items():
        devices[name] = mf.device_entry(name, device.STATE_VERSION, device.save_state())
    if machine.fw_cfg is not None:
        devices["fw_cfg"] = mf.device_entry("fw_cfg", machine.fw_cfg.STATE_VERSION, machine.fw_cfg.save_state())
    devices["virtio"] = [mf.device_entry("virtio", t.STATE_VERSION, t.save_state()) for t in machine.virtio_transports]
    devices["irq_lines"] = {str(gsi): line.level for gsi, line in machine.irq_lines.items()}
    return {
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "engine": engine.name,
        "machine": {
            "kernel": config.kernel, "initrd": config.initrd, "kernel_format": machine.kernel_format,
            "cmdline": machine.cmdline, "mem_size": config.mem_size, "firmware": config.firmware,
            "fw_cfg_dma": config.fw_cfg_dma, "idle": config.idle,
            "disks": [disk_identity(disk.path, disk.read_only) for disk in config.disks],
            "cpuid": [[e.function, e.index, e.eax, e.ebx, e.ecx, e.edx, e.significant_index]
                      for e in machine.cpuid.entries]},
        "vcpu": {"version": VCPU_VERSION, "state": engine.save_vcpu()},
        "platform": {"version": PLATFORM_VERSION, "state": engine.save_platform()},
        "devices": devices,
    }


def disk_identity(path: str, read_only: bool) -> dict:
    """How a restore recognises the disk: where it was, and its size and modification time."""
    info = os.stat(path)
    return {"path": os.path.abspath(path), "read_only": read_only, "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _write_roms(memory, directory: str) -> list:
    roms = []
    for gpa, data in memory.roms():
        name = f"rom-{gpa:x}"
        with open(os.path.join(directory, name), "wb") as f:
            f.write(data)
        roms.append({"gpa": gpa, "file": name, "size": len(data)})
    return roms


def _staging_directory(path: str) -> str:
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        raise VmmError(f"cannot save a snapshot in {parent}: no such directory")
    staging = os.path.join(parent, f".{os.path.basename(path)}.saving-{os.getpid()}-{threading.get_ident()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        os.mkdir(staging, 0o700)
    except OSError as error:
        raise VmmError(f"cannot save a snapshot in {parent}: {error.strerror}") from None
    return staging


def _check_replaceable(path: str) -> None:
    """A snapshot goes where nothing is, or where an empty directory or another snapshot is."""
    if os.path.lexists(path) and not (os.path.isdir(path) and (not os.listdir(path) or _is_snapshot(path))):
        raise VmmError(f"{path} exists and is not a snapshot: not replacing it")


def _replace(staging: str, path: str) -> None:
    """Put the finished snapshot at `path`: a rename, with an old snapshot there moved aside
    first and deleted after (its files live on while a restored VM maps them)."""
    _check_replaceable(path)
    old = staging + ".old"
    if os.path.lexists(path):
        os.rename(path, old)
    os.rename(staging, path)
    shutil.rmtree(old, ignore_errors=True)


def _is_snapshot(path: str) -> bool:
    return os.path.isfile(os.path.join(path, mf.MANIFEST))
