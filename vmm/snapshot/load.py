"""Restoring a VM (Machine.restore): open a snapshot, check it, and give the Machine what it
builds the VM from instead of a boot.

open_snapshot() reads and verifies the manifest (manifest.py: format, version, checksum),
follows a diff's chain of bases, and checks the disks: each must exist with the size and
modification time the snapshot recorded, unless the caller forces it (the guest's view of a
disk that changed under it is not the disk's). Everything else is checked as it loads: every
device model checks its own fields (devices/state.py), the vCPU its format
(arch/x86/cpu_snapshot.py); whatever does not fit becomes one SnapshotError.

The machine asks, in order: memory() (RAM mapped from the memory file, and the ROMs),
fw_cfg(), cpuid(), restore_line_levels() before it connects the interrupt lines, and apply()
once the engine exists: the devices, then the interrupt platform, then the vCPU.
"""
import os

from ..arch.x86.cpu_snapshot import CpuFormatError
from ..arch.x86.cpuid import CpuidEntry, CpuidTable
from ..config import DiskSpec, MachineConfig
from ..devices.fw_cfg import FwCfg
from ..devices.state import StateError
from ..errors import InputError, VmmError
from ..user_files import read_input
from . import manifest as mf
from .memory_file import map_memory
from .save import PLATFORM_VERSION, VCPU_VERSION

MAX_CHAIN = 64                          # diffs on diffs: a loop in the bases ends here


def open_snapshot(path: str, disks=None, force: bool = False) -> "OpenedSnapshot":
    return OpenedSnapshot(path, disks, force)


class OpenedSnapshot:
    def __init__(self, path: str, disks=None, force: bool = False):
        self.path = os.path.abspath(path)
        self.manifest = mf.read(self.path)
        try:
            self._machine = self.manifest["machine"]
            self.kernel_format = self._machine["kernel_format"]
            self.cmdline = self._machine["cmdline"]
            self.mem_size = self._machine["mem_size"]
            self.engine = self.manifest["engine"]
            if not isinstance(self.mem_size, int) or self.mem_size <= 0:
                raise TypeError("mem_size")
        except (KeyError, TypeError) as exc:
            raise mf.SnapshotError(f"{self.path}: the manifest lacks the machine's {exc}") from None
        self.layers = self._memory_layers()
        self.disks = self._check_disks(disks, force)

    # --- what Machine.__init__ asks for ---------------------------------------------------------
    def config(self, accel="auto", serial="capture", timeout=None, idle=None, stdin=None) -> MachineConfig:
        m = self._machine
        return MachineConfig(kernel=m.get("kernel") or "", initrd=m.get("initrd"), mem_size=self.mem_size,
                             accel=accel, serial=serial, timeout=timeout, stdin=stdin,
                             firmware=m.get("firmware"), fw_cfg_dma=bool(m.get("fw_cfg_dma", True)),
                             idle=idle or m.get("idle", "sleep"), disks=self.disks)

    def memory(self):
        memory = map_memory(self.layers, self.mem_size)
        try:
            for rom in self.manifest["memory"].get("roms") or []:
                data = read_input(os.path.join(self.path, os.path.basename(rom["file"])), "snapshot firmware image",
                                  self.mem_size, "guest RAM", too_big=mf.SnapshotError)
                if len(data) != rom["size"]:
                    raise mf.SnapshotError(f"{self.path}: firmware image {rom['file']} is truncated")
                memory.add_rom(rom["gpa"], data)
        except (OSError, KeyError, TypeError, ValueError) as exc:
            memory.close()
            raise mf.SnapshotError(f"{self.path}: cannot load a firmware image ({exc})") from None
        except BaseException:
            memory.close()
            raise
        return memory

    def fw_cfg(self, memory):
        if "fw_cfg" not in self.manifest.get("devices", {}):
            return None
        try:
            blob = read_input(os.path.join(self.path, mf.FW_CFG), "snapshot fw_cfg items", self.mem_size,
                              "guest RAM", too_big=mf.SnapshotError)
            return FwCfg.from_items_blob(memory, blob, dma=bool(self._machine.get("fw_cfg_dma", True)))
        except OSError as error:
            raise mf.SnapshotError(f"{self.path}: cannot read its fw_cfg items: {error.strerror}") from None
        except StateError as error:
            raise mf.SnapshotError(f"{self.path}: {error}") from None

    def cpuid(self) -> CpuidTable:
        """The CPUID table the guest saw when it was saved (the engine presents the same)."""
        try:
            return CpuidTable(CpuidEntry(*(int(v) for v in row[:6]), significant_index=bool(row[6]))
                              for row in self._machine["cpuid"])
        except (KeyError, TypeError, ValueError, IndexError):
            raise mf.SnapshotError(f"{self.path}: the saved CPUID table is malformed") from None

    def restore_line_levels(self, irq_lines) -> None:
        levels = self.manifest.get("devices", {}).get("irq_lines", {})
        for gsi, line in irq_lines.items():
            line.restore_level(bool(levels.get(str(gsi), False)) if isinstance(levels, dict) else False)

    def apply(self, machine) -> None:
        """Every device, the interrupt platform and the vCPU, as saved."""
        devices = self.manifest.get("devices")
        try:
            machine.uart.load_state(mf.device_state(devices, "uart", machine.uart.STATE_VERSION))
            for name, device in machine.board_devices.items():
                device.load_state(mf.device_state(devices, name, device.STATE_VERSION))
            if machine.fw_cfg is not None:
                machine.fw_cfg.load_state(mf.device_state(devices, "fw_cfg", machine.fw_cfg.STATE_VERSION))
            self._apply_virtio(machine, devices)
            machine.engine.load_platform(self._part("platform", PLATFORM_VERSION))
            machine.engine.load_vcpu(self._part("vcpu", VCPU_VERSION))
        except (StateError, CpuFormatError) as error:
            raise mf.SnapshotError(f"{self.path}: {error}") from None
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise mf.SnapshotError(f"{self.path}: a saved state is malformed ({type(exc).__name__}: {exc})") from None
        except mf.SnapshotError:
            raise
        except VmmError as error:               # the engine refused a value (KVM_SET_*)
            raise mf.SnapshotError(f"{self.path}: the {machine.engine.name} engine cannot load it: {error}") from None

    def _apply_virtio(self, machine, devices) -> None:
        saved = devices.get("virtio") if isinstance(devices, dict) else None
        if not isinstance(saved, list) or len(saved) != len(machine.virtio_transports):
            raise mf.SnapshotError(f"{self.path}: the virtio devices saved do not match the machine's")
        for transport, entry in zip(machine.virtio_transports, saved):
            transport.load_state(mf.device_state({"virtio": entry}, "virtio", transport.STATE_VERSION))

    def _part(self, name: str, supported: int):
        return mf.device_state(self.manifest, name, supported)

    # --- checks made when the snapshot is opened --------------------------------------------------
    def _memory_layers(self):
        """[(memory file, ranges)] from the full snapshot at the bottom of the chain up."""
        layers, directory, manifest = [], self.path, self.manifest
        for _ in range(MAX_CHAIN):
            memory = manifest.get("memory")
            if not isinstance(memory, dict) or memory.get("size") != self.mem_size:
                raise mf.SnapshotError(f"{directory}: the manifest's memory section is missing or of another size")
            layers.append((os.path.join(directory, os.path.basename(str(memory.get("file", mf.MEMORY)))),
                           memory.get("ranges")))
            base = memory.get("base")
            if base is None:
                layers.reverse()
                if layers[0][1] is not None:
                    raise mf.SnapshotError(f"{directory}: a full snapshot with page ranges")
                return layers
            if not isinstance(base, dict) or not isinstance(base.get("path"), str) or \
                    not isinstance(memory.get("ranges"), list):
                raise mf.SnapshotError(f"{directory}: a diff snapshot without its base or page ranges")
            base_dir = os.path.normpath(os.path.join(os.path.dirname(directory), base["path"]))
            try:
                manifest = mf.read(base_dir)
            except InputError:
                raise mf.SnapshotError(f"{directory} is a diff on {base_dir}, which is gone") from None
            if manifest.get("checksum") != base.get("checksum"):
                raise mf.SnapshotError(f"{directory} is a diff on {base_dir}, which has been replaced since")
            directory = base_dir
        raise mf.SnapshotError(f"{self.path}: more than {MAX_CHAIN} snapshots in its chain of bases")

    def _check_disks(self, paths, force: bool) -> list:
        saved = self._machine.get("disks", [])
        if not isinstance(saved, list):
            raise mf.SnapshotError(f"{self.path}: the saved disks are malformed")
        if paths is not None and len(paths) != len(saved):
            raise mf.SnapshotError(f"the snapshot has {len(saved)} disks; {len(paths)} given")
        disks = []
        for i, disk in enumerate(saved):
            try:
                path, read_only, size, mtime = disk["path"], bool(disk["read_only"]), disk["size"], disk["mtime_ns"]
            except (KeyError, TypeError):
                raise mf.SnapshotError(f"{self.path}: saved disk {i} is malformed") from None
            if paths is not None:
                path = DiskSpec.parse(paths[i]).path if isinstance(paths[i], str) else paths[i].path
            try:
                info = os.stat(path)
            except OSError as error:
                raise InputError(f"disk {path} of the snapshot: {error.strerror}") from None
            if not force and (info.st_size != size or info.st_mtime_ns != mtime):
                raise mf.SnapshotError(f"disk {path} has changed since the snapshot (size or modification time); "
                                       "restore with --force to use it anyway")
            disks.append(DiskSpec(path, read_only=read_only))
        return disks
