"""cgroup limits for one container (memory, CPU shares): cgroup v2 where usable, else v1.

Where each controller goes, first match wins:
- cgroup v2, if the controller is enabled for child cgroups (listed in cgroup.subtree_control)
  of this process's own v2 cgroup, or else of the v2 hierarchy's root;
- the cgroup v1 hierarchy mounted with that controller, under this process's own cgroup there.
The new cgroup, pyvmm-<pid>-<n>, is a child of the chosen parent, so limits already set on the
caller still apply. On a "hybrid" host (v1 controllers under /sys/fs/cgroup/<controller>, a v2
mount at /sys/fs/cgroup/unified with few or no controllers) this means v1.

Files written, before the container's process is attached:
  v2 memory: memory.max = SIZE, and memory.swap.max = 0 if present (SIZE bounds RAM plus swap)
  v2 cpu:    cpu.weight = crun's conversion of the shares (2 -> 1, 1024 -> 100, 262144 -> 10000)
  v1 memory: memory.limit_in_bytes = SIZE, and memory.memsw.limit_in_bytes = SIZE if present
  v1 cpu:    cpu.shares = N
A process that exceeds the memory limit is killed by the kernel's OOM killer (SIGKILL).
"""
import errno
import itertools
import os
import re
import signal
import time
from collections import namedtuple

from ..errors import UsageError, VmmError
from ..host.process import alive
from .cgroup_limits import shares_to_weight
from .errors import ContainerUnavailable

V1_CONTROLLERS = frozenset(("blkio", "cpu", "cpuacct", "cpuset", "devices", "freezer", "hugetlb", "memory",
                            "misc", "net_cls", "net_prio", "perf_event", "pids", "rdma"))
MIN_SHARES, MAX_SHARES = 2, 262144          # the kernel's range for v1 cpu.shares
NAME_PREFIX = "pyvmm-"
REMOVE_TIMEOUT = 2.0                         # seconds of EBUSY retries before giving up

_serial = itertools.count()


# version: 1 or 2; root: the mounted cgroup's path inside the hierarchy (mountinfo field 4);
# controllers: a v1 hierarchy's controllers, empty for v2 (see each cgroup.subtree_control).
# (A namedtuple, not a dataclass: importing dataclasses costs milliseconds of start-up.)
Hierarchy = namedtuple("Hierarchy", "version mountpoint root controllers")


def read_file(path) -> str:
    with open(path) as file:
        return file.read()


def write_file(path, value) -> None:
    with open(path, "w") as file:
        file.write(str(value))


def _unescape(field: str) -> str:
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def hierarchies(mountinfo: str, named=False) -> list:
    """The cgroup hierarchies in a /proc/self/mountinfo text, v2 first, each once; with named=True
    also the v1 hierarchies without a controller (name=systemd), which the OCI runtime joins as runc does."""
    found, seen = [], set()
    for line in mountinfo.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        fstype, options = fields[sep + 1], fields[sep + 3]
        if fstype == "cgroup2":
            version, controllers = 2, frozenset()
        elif fstype == "cgroup":
            version, controllers = 1, frozenset(options.split(",")) & V1_CONTROLLERS
            if not controllers and not named:   # a named hierarchy (name=systemd) limits nothing
                continue
            if not controllers:
                controllers = frozenset(o for o in options.split(",") if o.startswith("name="))
        else:
            continue
        if (version, controllers) not in seen:
            seen.add((version, controllers))
            found.append(Hierarchy(version, _unescape(fields[4]), _unescape(fields[3]), controllers))
    return sorted(found, key=lambda h: -h.version)


def own_cgroups(proc_cgroup: str) -> dict:
    """A /proc/PID/cgroup text -> {v1 controller: path, "": v2 path}."""
    result = {}
    for line in proc_cgroup.splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            result[controller] = path
    return result


def own_dir(hierarchy: Hierarchy, own: dict) -> str:
    """The directory of this process's cgroup in `hierarchy`."""
    key = "" if hierarchy.version == 2 else min(hierarchy.controllers)
    path = own.get(key, "/")
    root = hierarchy.root.rstrip("/")
    if root:
        path = path[len(root):] if path == root or path.startswith(root + "/") else "/"
    return os.path.normpath(os.path.join(hierarchy.mountpoint, path.lstrip("/")))


def _v2_parent(hierarchy: Hierarchy, own: dict, controller: str) -> str | None:
    for parent in dict.fromkeys((own_dir(hierarchy, own), hierarchy.mountpoint)):
        try:
            if controller in read_file(os.path.join(parent, "cgroup.subtree_control")).split():
                return parent
        except OSError:
            continue
    return None


def plan(controllers, found: list, own: dict) -> dict:
    """{parent directory: (version, [controllers])} for the wanted controllers."""
    placements = {}
    for controller in controllers:
        for hierarchy in found:
            if hierarchy.version == 2:
                parent = _v2_parent(hierarchy, own, controller)
            else:
                parent = own_dir(hierarchy, own) if controller in hierarchy.controllers else None
            if parent:
                placements.setdefault(parent, (hierarchy.version, []))[1].append(controller)
                break
        else:
            v2 = [h.mountpoint for h in found if h.version == 2]
            where = f"not enabled in {v2[0]}'s cgroup.subtree_control" if v2 else "no cgroup v2 mounted"
            raise ContainerUnavailable(f"the {controller} cgroup controller is unavailable: "
                                       f"no cgroup v1 hierarchy has it and {where}")
    return placements


def check_limits(memory, cpu_shares) -> None:
    if memory is not None and (not isinstance(memory, int) or memory <= 0):
        raise UsageError(f"memory limit must be a positive number of bytes, not {memory!r}")
    if cpu_shares is not None and (not isinstance(cpu_shares, int) or not MIN_SHARES <= cpu_shares <= MAX_SHARES):
        raise UsageError(f"cpu shares must be a whole number from {MIN_SHARES} to {MAX_SHARES}, not {cpu_shares!r}")


def _limit_files(version: int, controller: str, directory: str, memory, cpu_shares) -> list:
    def optional(name, value):
        return [(name, value)] if os.path.exists(os.path.join(directory, name)) else []
    if controller == "memory":
        if version == 2:
            return [("memory.max", memory)] + optional("memory.swap.max", 0)
        return [("memory.limit_in_bytes", memory)] + optional("memory.memsw.limit_in_bytes", memory)
    if version == 2:
        return [("cpu.weight", shares_to_weight(cpu_shares))]
    return [("cpu.shares", cpu_shares)]


def probe(memory=True, cpu=True) -> str | None:
    """None if the wanted controllers can be used here, else the reason."""
    wanted = [name for name, want in (("memory", memory), ("cpu", cpu)) if want]
    try:
        plan(wanted, hierarchies(read_file("/proc/self/mountinfo")), own_cgroups(read_file("/proc/self/cgroup")))
    except ContainerUnavailable as error:
        return str(error)
    return None


_LEFTOVER = re.compile(re.escape(NAME_PREFIX) + r"(\d+)-\d+")


def sweep_leftovers() -> list:
    """Remove the cgroups pyvmm-<pid>-<n> whose launcher <pid> is gone (it was SIGKILLed before
    it could remove them), where this process would make its own; returns their paths."""
    try:
        found, own = hierarchies(read_file("/proc/self/mountinfo")), own_cgroups(read_file("/proc/self/cgroup"))
    except OSError:
        return []
    parents = {own_dir(h, own) for h in found} | {h.mountpoint for h in found if h.version == 2}
    removed = []
    for parent in sorted(parents):
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            match = _LEFTOVER.fullmatch(name)
            if match and not alive(int(match.group(1))):
                path = os.path.join(parent, name)
                if remove_dir(path) is None:
                    removed.append(path)
    return removed


class Cgroup:
    """One container's cgroup, a directory in each hierarchy used. Create, attach, remove."""

    def __init__(self, name: str, placements: list):
        self.name = name
        self.placements = placements        # [(version, [controllers], directory)]

    @property
    def directories(self) -> list:
        return [directory for _, _, directory in self.placements]

    def describe(self) -> str:
        return "; ".join(f"cgroup v{version} {'+'.join(controllers)}: {directory}"
                         for version, controllers, directory in self.placements)

    @classmethod
    def create(cls, memory=None, cpu_shares=None) -> "Cgroup":
        """A new cgroup with these limits (memory in bytes, CPU shares as in cgroup v1)."""
        check_limits(memory, cpu_shares)
        sweep_leftovers()
        wanted = [name for name, value in (("memory", memory), ("cpu", cpu_shares)) if value is not None]
        layout = plan(wanted, hierarchies(read_file("/proc/self/mountinfo")), own_cgroups(read_file("/proc/self/cgroup")))
        while True:
            name = f"{NAME_PREFIX}{os.getpid()}-{next(_serial)}"
            cgroup = cls(name, [])
            try:
                for parent, (version, controllers) in layout.items():
                    directory = os.path.join(parent, name)
                    os.mkdir(directory)
                    cgroup.placements.append((version, controllers, directory))
                    for controller in controllers:
                        for file, value in _limit_files(version, controller, directory, memory, cpu_shares):
                            try:
                                write_file(os.path.join(directory, file), value)
                            except OSError as error:
                                raise VmmError(f"cannot set {file} = {value} in {directory}: {error.strerror}") from None
                return cgroup
            except FileExistsError:
                cgroup.remove()             # a stale cgroup of an earlier process with our pid: next name
            except OSError as error:
                cgroup.remove()
                raise VmmError(f"cannot create cgroup {error.filename}: {error.strerror}") from None
            except BaseException:
                cgroup.remove()
                raise

    def attach(self, pid: int) -> None:
        """Move process `pid` (all its threads) into this cgroup in every hierarchy."""
        for directory in self.directories:
            try:
                write_file(os.path.join(directory, "cgroup.procs"), pid)
            except OSError as error:
                raise VmmError(f"cannot move process {pid} into cgroup {directory}: {error.strerror}") from None

    def remove(self) -> None:
        """Remove every directory of this cgroup; processes still in it are killed first."""
        failures = []
        for directory in reversed(self.directories):
            error = remove_dir(directory)
            if error:
                failures.append(f"{directory}: {error}")
        self.placements = []
        if failures:
            raise VmmError("cannot remove cgroup " + "; ".join(failures))


def remove_dir(directory: str) -> str | None:
    """rmdir, retrying while the cgroup is still busy (killing what is left in it); None when gone,
    or when it still has child cgroups (a parent another container uses), else the reason."""
    deadline = time.monotonic() + REMOVE_TIMEOUT
    pause = 0.0005
    while True:
        try:
            os.rmdir(directory)
            return None
        except FileNotFoundError:
            return None
        except OSError as error:
            if error.errno == errno.EBUSY and any(entry.is_dir() for entry in os.scandir(directory)):
                return None
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                return error.strerror
        try:
            for pid in read_file(os.path.join(directory, "cgroup.procs")).split():
                os.kill(int(pid), signal.SIGKILL)
        except (OSError, ValueError):
            pass
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
