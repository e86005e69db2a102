"""A container's cgroup at a given path (an OCI `cgroupsPath`), in every hierarchy, with OCI limits.

Which hierarchies (runc's choice, so that podman and the kernel see what they expect):
- a unified host (cgroup2 mounted on /sys/fs/cgroup): the one v2 hierarchy; the controllers the
  limits need are enabled in cgroup.subtree_control of every ancestor, from the top down;
- otherwise (cgroup v1, or "hybrid": v1 controllers plus a v2 mount with few controllers, as on
  this project's machines): one directory in every mounted v1 controller hierarchy, and the v2
  mount is left alone. The named name=systemd hierarchy is skipped (it limits nothing).
Paths: an absolute cgroupsPath is taken from each hierarchy's root (runtime-spec: "relative to
the cgroups mount point"); a relative one from this process's own cgroup in that hierarchy.
A new v1 cpuset directory starts with no CPUs and no memory nodes, and a process cannot join it,
so each cpuset directory made here copies its parent's cpuset.cpus and cpuset.mems first.

Directories made here are recorded (created), so remove() takes away exactly those, deepest
first, and leaves a parent that existed before (podman's libpod_parent) or that another
container still uses (rmdir says EBUSY).
"""
import os
import signal
import time

from . import cgroup_limits
from .cgroups import hierarchies, own_cgroups, own_dir, read_file as _read, remove_dir, write_file as _write
from .errors import ContainerUnavailable
from ..errors import VmmError

V2_MOUNT = "/sys/fs/cgroup"
FREEZE_TIMEOUT = 5.0


def unified_host() -> bool:
    return os.path.exists(os.path.join(V2_MOUNT, "cgroup.controllers"))


class ContainerCgroup:
    """placements: [(version, name, directory, controllers)], name being the hierarchy's mount
    directory name (cpu, memory, or "" for v2); created: directories made by create()."""

    def __init__(self, placements, created):
        self.placements = [tuple(p[:3]) + (frozenset(p[3]),) for p in placements]
        self.created = list(created)

    # --- persistence (the OCI state file keeps this) ---
    def to_json(self) -> dict:
        return {"placements": [[v, n, d, sorted(c)] for v, n, d, c in self.placements], "created": self.created}

    @classmethod
    def from_json(cls, data: dict) -> "ContainerCgroup":
        return cls(data.get("placements", []), data.get("created", []))

    @property
    def directories(self) -> list:
        return [directory for _, _, directory, _ in self.placements]

    def mount_view(self) -> list:
        """[(version, name, directory)] for the container's own `cgroup` mount."""
        return [(version, name, directory) for version, name, directory, _ in self.placements]

    # --- creation ---
    @classmethod
    def create(cls, path: str, resources: dict, device_rules=()) -> tuple["ContainerCgroup", list]:
        """Make the directories and write the limits. Returns (cgroup, warnings)."""
        layout = _layout(path)
        version = layout[0][0]
        limits, warnings = cgroup_limits.files(version, resources or {})
        cgroup = cls([], [])
        try:
            for version_, name, directory, controllers in layout:
                cgroup.created.extend(_make_dirs(directory, "cpuset" in controllers))
                cgroup.placements.append((version_, name, directory, controllers))
            if version == 2:
                _enable_v2_controllers(layout[0][2], {controller for controller, _, _ in limits})
            cgroup._write_limits(limits)
            if device_rules:
                warnings += cgroup._write_devices(version, device_rules)
        except BaseException:
            cgroup.remove()
            raise
        return cgroup, warnings

    def _directory_for(self, controller: str) -> str:
        for version, _, directory, controllers in self.placements:
            if version == 2 or controller in controllers:
                return directory
        raise ContainerUnavailable(f"the {controller} cgroup controller is not mounted here, so its limits "
                                   "cannot be applied")

    def _write_limits(self, limits: list) -> None:
        for controller, name, value in limits:
            path = os.path.join(self._directory_for(controller), name)
            try:
                _write(path, value)
            except FileNotFoundError:
                raise cgroup_limits.LimitError(f"cannot set {name}: this kernel has no such cgroup file "
                                               f"({path})") from None
            except OSError as error:
                raise VmmError(f"cannot set {name} = {value} in {os.path.dirname(path)}: {error.strerror}") from None

    def _write_devices(self, version: int, rules) -> list:
        if version == 2:
            return ["device cgroup rules are not enforced on cgroup v2 by this runtime (that needs an eBPF "
                    "program); only the device nodes created in the container are reachable"]
        directory = self._directory_for("devices")
        for name, line in cgroup_limits.device_rules_v1(rules):
            try:
                _write(os.path.join(directory, name), line)
            except OSError as error:
                raise VmmError(f"cannot write {line!r} to {name} in {directory}: {error.strerror}") from None
        return []

    # --- use ---
    def attach(self, pid: int) -> None:
        for directory in self.directories:
            try:
                _write(os.path.join(directory, "cgroup.procs"), pid)
            except OSError as error:
                raise VmmError(f"cannot move process {pid} into cgroup {directory}: {error.strerror}") from None

    def pids(self) -> list:
        """The processes in the container's cgroup (the first hierarchy's view)."""
        for directory in self.directories:
            try:
                return [int(pid) for pid in _read(os.path.join(directory, "cgroup.procs")).split()]
            except OSError:
                continue
        return []

    def _freezer(self):
        for version, _, directory, controllers in self.placements:
            if version == 2:
                return 2, os.path.join(directory, "cgroup.freeze")
            if "freezer" in controllers:
                return 1, os.path.join(directory, "freezer.state")
        raise ContainerUnavailable("no freezer cgroup controller is mounted here, so a container cannot be paused")

    def frozen(self) -> bool:
        try:
            version, path = self._freezer()
            return _read(path).strip() in ("FROZEN", "1")
        except (OSError, ContainerUnavailable):
            return False

    def freeze(self, freeze: bool) -> None:
        version, path = self._freezer()
        want = ("FROZEN" if freeze else "THAWED") if version == 1 else ("1" if freeze else "0")
        _write(path, want)
        deadline = time.monotonic() + FREEZE_TIMEOUT
        while version == 1 and freeze and _read(path).strip() != "FROZEN":      # FREEZING meanwhile
            if time.monotonic() > deadline:
                _write(path, "THAWED")
                raise VmmError(f"the container's processes did not freeze within {FREEZE_TIMEOUT:.0f} s")
            time.sleep(0.01)

    def signal_all(self, signum: int) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass

    def remove(self) -> None:
        """Kill what is left in the cgroup, thaw it, and remove the directories made by create()."""
        if self.pids():
            self.signal_all(signal.SIGKILL)
            if self.frozen():
                self.freeze(False)
        failures = []
        for directory in sorted(self.created, key=lambda d: -d.count("/")):
            reason = remove_dir(directory)
            if reason:
                failures.append(f"{directory}: {reason}")
        self.created = []
        if failures:
            raise VmmError("cannot remove cgroup " + "; ".join(failures))


def _layout(path: str) -> list:
    """[(version, name, directory, controllers)] of the container's cgroup in each hierarchy used."""
    found = hierarchies(_read("/proc/self/mountinfo"), named=True)
    own = own_cgroups(_read("/proc/self/cgroup"))
    if unified_host():
        chosen = [h for h in found if h.version == 2 and h.mountpoint == V2_MOUNT][:1]
    else:
        chosen = [h for h in found if h.version == 1]
    if not chosen:
        raise ContainerUnavailable("no cgroup hierarchy is mounted under /sys/fs/cgroup")
    layout = []
    for hierarchy in chosen:
        base = hierarchy.mountpoint if path.startswith("/") else own_dir(hierarchy, own)
        directory = os.path.normpath(os.path.join(base, path.lstrip("/")))
        if not directory.startswith(hierarchy.mountpoint.rstrip("/") + "/"):
            raise cgroup_limits.LimitError(f"linux.cgroupsPath {path!r} leaves the cgroup hierarchy")
        controllers = hierarchy.controllers if hierarchy.version == 1 else frozenset()
        name = os.path.basename(hierarchy.mountpoint) if hierarchy.version == 1 else ""
        layout.append((hierarchy.version, name, directory, controllers))
    return layout


def _make_dirs(directory: str, cpuset: bool) -> list:
    """mkdir -p, returning the directories made (top first); a cpuset one copies its parent's sets."""
    missing = []
    probe = directory
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    made = []
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            continue                    # another runtime made the same parent just now
        except OSError as error:
            raise VmmError(f"cannot create cgroup {path}: {error.strerror}") from None
        made.append(path)
        if cpuset:
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not _read(os.path.join(path, name)).strip():
                    _write(os.path.join(path, name), _read(os.path.join(os.path.dirname(path), name)).strip())
    return made


def _enable_v2_controllers(directory: str, wanted: set) -> None:
    """Enable `wanted` controllers in cgroup.subtree_control of every ancestor of `directory`."""
    if not wanted:
        return
    ancestors = []
    probe = os.path.dirname(directory)
    while probe.startswith(V2_MOUNT):
        ancestors.append(probe)
        probe = os.path.dirname(probe)
    for ancestor in reversed(ancestors):
        available = set(_read(os.path.join(ancestor, "cgroup.controllers")).split())
        missing = wanted - available
        if missing:
            raise ContainerUnavailable(f"cgroup v2 controller(s) {', '.join(sorted(missing))} not available "
                                       f"in {ancestor}")
        try:
            _write(os.path.join(ancestor, "cgroup.subtree_control"), " ".join(f"+{c}" for c in sorted(wanted)))
        except OSError as error:
            raise VmmError(f"cannot enable {', '.join(sorted(wanted))} in {ancestor}: {error.strerror}") from None
