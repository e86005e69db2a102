"""The runtime's state directory: one folder per container under --root (default /run/vmm-oci).

ROOT/ID/ (mode 0711, as runc's: a container process that switched to another user must still
reach its exec FIFO through it) holds:
  state.json   what later commands need: the init's pid and its start time (from /proc/PID/stat,
               so a recycled pid is not mistaken for the container), bundle, rootfs, annotations,
               the cgroup directories, the mode (namespaces or vm), creation time;
  config.json  the config as it was at `create` (later edits of the bundle's must not change the
               container; `start` and `delete` read hooks from here);
  exec.fifo    present from `create` to `start`: the init blocks opening it for writing until
               `start` opens it for reading (runc's mechanism), so its presence means "created".
Status, as the runtime-spec defines it, is computed, never stored: "creating" while state.json
says so and its creator lives; "stopped" once the init's pid is gone (or a zombie, or recycled);
"created" while the FIFO exists; "paused" while the cgroup is frozen; else "running".
"""
import json
import os
import re
import time
from contextlib import contextmanager

from ..container.cgroupfs import ContainerCgroup
from .errors import ContainerExists, NoSuchContainer, UsageError, VmmError

DEFAULT_ROOT = "/run/vmm-oci"
STATE = "state.json"
CONFIG = "config.json"
FIFO = "exec.fifo"
LOCK = ".lock"
OCI_VERSION = "1.2.0"                  # the runtime-spec version of the state this runtime writes
ID_PATTERN = re.compile(r"^[\w+.-]+$")


def check_id(container_id: str) -> str:
    if not container_id or not ID_PATTERN.match(container_id) or container_id in (".", ".."):
        raise UsageError(f"invalid container ID {container_id!r}: use letters, digits, '_', '+', '-' and '.'")
    return container_id


def process_stat(pid: int):
    """(state letter, start time in clock ticks) of a process, or None if it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(b")") + 2:].split()       # after "pid (comm) "
    return fields[0].decode(), int(fields[19])


def alive(pid, start_time) -> bool:
    found = process_stat(pid) if pid else None
    return bool(found) and found[0] not in ("Z", "X") and (start_time is None or found[1] == start_time)


class Container:
    def __init__(self, root: str, container_id: str, data: dict):
        self.root, self.id, self.data = root, container_id, data
        self.dir = os.path.join(root, container_id)

    @property
    def pid(self) -> int:
        return self.data.get("pid") or 0

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, FIFO)

    @property
    def cgroup(self):
        data = self.data.get("cgroup")
        return ContainerCgroup.from_json(data) if data else None

    def save(self) -> None:
        temporary = os.path.join(self.dir, STATE + ".tmp")
        with open(temporary, "w") as file:
            json.dump(self.data, file)
        os.replace(temporary, os.path.join(self.dir, STATE))

    def status(self) -> str:
        if self.data.get("creating"):
            return "creating" if alive(self.data.get("creator"), None) else "stopped"
        if not alive(self.pid, self.data.get("start_time")):
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        cgroup = self.cgroup
        if cgroup is not None and cgroup.frozen():
            return "paused"
        return "running"

    def state(self) -> dict:
        """The runtime-spec state object (what `state` prints and hooks read on stdin)."""
        status = self.status()
        state = {"ociVersion": OCI_VERSION, "id": self.id, "status": status,
                 "pid": self.pid if status not in ("stopped",) else 0,
                 "bundle": self.data["bundle"], "annotations": self.data.get("annotations") or {}}
        if status == "stopped":
            del state["pid"]
        return state

    def listing(self) -> dict:
        """One row of `list --format json`, as runc prints it."""
        status = self.status()
        return {"ociVersion": OCI_VERSION, "id": self.id, "pid": self.pid if status != "stopped" else 0,
                "status": status, "bundle": self.data["bundle"], "rootfs": self.data.get("rootfs", ""),
                "created": self.data.get("created", ""), "owner": self.data.get("owner", ""),
                "annotations": self.data.get("annotations") or {}}

    def release_host_mounts(self) -> None:
        """Unmount what a container without its own mount namespace mounted under its rootfs."""
        if "host_mounts" in self.data:
            from ..container.mounts import unmount_added
            unmount_added(self.data["rootfs"], self.data["host_mounts"])

    def config_path(self) -> str:
        return os.path.join(self.dir, CONFIG)

    @contextmanager
    def locked(self):
        """Hold this container's lock (one state-changing command at a time)."""
        fd = os.open(os.path.join(self.dir, LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            os.lockf(fd, os.F_LOCK, 0)
            yield
        finally:
            os.close(fd)


class StateRoot:
    def __init__(self, path: str = DEFAULT_ROOT):
        self.path = os.path.abspath(path)

    def _ensure(self) -> None:
        try:
            os.makedirs(self.path, 0o711, exist_ok=True)
        except OSError as error:
            raise VmmError(f"cannot create the state directory {self.path}: {error.strerror}") from None

    def reserve(self, container_id: str, data: dict) -> Container:
        """Make ROOT/ID (failing if it exists) and write a first "creating" state."""
        check_id(container_id)
        self._ensure()
        directory = os.path.join(self.path, container_id)
        try:
            os.mkdir(directory, 0o711)
        except FileExistsError:
            raise ContainerExists(f"container {container_id} exists already (in {self.path})") from None
        os.chmod(directory, 0o711)          # past the umask
        container = Container(self.path, container_id, dict(data, creating=True, creator=os.getpid(),
                                                            created=_now()))
        container.save()
        return container

    def load(self, container_id: str) -> Container:
        check_id(container_id)
        try:
            with open(os.path.join(self.path, container_id, STATE)) as file:
                data = json.load(file)
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchContainer(f"container {container_id} does not exist (in {self.path})") from None
        except (OSError, ValueError) as error:
            raise VmmError(f"the state of container {container_id} is unreadable: {error}") from None
        return Container(self.path, container_id, data)

    def all(self) -> list:
        try:
            names = sorted(os.listdir(self.path))
        except FileNotFoundError:
            return []
        found = []
        for name in names:
            try:
                found.append(self.load(name))
            except (NoSuchContainer, VmmError, UsageError):
                continue                    # a folder mid-create or not ours
        return found


def remove_dir(directory: str) -> None:
    """Remove ROOT/ID and everything in it (state, config copy, FIFO, lock)."""
    for name in os.listdir(directory) if os.path.isdir(directory) else ():
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass


def _now() -> str:
    seconds = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1e9):09d}Z"
