"""The OCI runtime's cgroups (vmm/container/cgroupfs.py) on the kernel's own files, v1 and v2.

This machine is a hybrid host: the v1 controllers are where containers go, and the v2 mount at
/sys/fs/cgroup/unified has no controller but hugetlb. The v2 path is exercised on that mount
as if it were a unified host's /sys/fs/cgroup: directories, attach, the v2 freezer, removal,
and the refusal of a limit whose controller v2 does not offer there.
"""
import os
import signal
import subprocess

import pytest

from vmm.container import cgroupfs, devices
from vmm.container.errors import ContainerUnavailable

# Their leftover checks read host-wide state: one suite at a time (conftest.py).
pytestmark = pytest.mark.usefixtures("host_state_to_ourselves")

V2_HYBRID = "/sys/fs/cgroup/unified"
PATH = f"/pyvmm-oci-cgroups-{os.getpid()}/c1"


def require_root():
    if os.geteuid() != 0:
        pytest.skip("cgroups need root")


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "1000"])
    yield process
    process.kill()
    process.wait()


def own_line(pid, hierarchy_key):
    with open(f"/proc/{pid}/cgroup") as file:
        for line in file:
            number, controllers, path = line.rstrip("\n").split(":", 2)
            if controllers == hierarchy_key or (hierarchy_key in controllers.split(",")):
                return path
    return None


def test_v1_limits_land_in_the_kernels_files(sleeper):
    require_root()
    if cgroupfs.unified_host():
        pytest.skip("a unified (v2-only) host: the v1 files do not exist")
    resources = {"memory": {"limit": 64 << 20, "swap": 64 << 20}, "pids": {"limit": 7}, "cpu": {"shares": 512}}
    rules = [devices.Rule(False, "a", None, None, "rwm")] + list(devices.DEFAULT_RULES)
    cgroup, warnings = cgroupfs.ContainerCgroup.create(PATH, resources, rules)
    try:
        assert warnings == []
        directory = {name: d for _, name, d, _ in cgroup.placements}
        read = lambda name, file: open(os.path.join(directory[name], file)).read().strip()    # noqa: E731
        assert read("memory", "memory.limit_in_bytes") == str(64 << 20)
        assert read("pids", "pids.max") == "7" and read("cpu", "cpu.shares") == "512"
        assert read("devices", "devices.list").splitlines()[:3] == ["c *:* m", "b *:* m", "c 1:3 rwm"]
        cgroup.attach(sleeper.pid)
        assert own_line(sleeper.pid, "memory") == PATH and own_line(sleeper.pid, "pids") == PATH
        assert cgroup.pids() == [sleeper.pid]
        cgroup.freeze(True)
        assert cgroup.frozen()
        cgroup.freeze(False)
        assert not cgroup.frozen()
    finally:
        cgroup.remove()
    assert sleeper.wait(timeout=30) == -signal.SIGKILL           # remove() kills what is left in it
    assert not any(os.path.exists(d) for d in cgroup.directories)
    assert not any(os.path.exists(os.path.dirname(d)) for d in cgroup.directories)     # the parent made here


def test_v2_directories_attach_freezer_and_removal(monkeypatch, sleeper):
    require_root()
    if not os.path.exists(os.path.join(V2_HYBRID, "cgroup.procs")):
        pytest.skip(f"no cgroup v2 mount at {V2_HYBRID} (not a hybrid host)")
    monkeypatch.setattr(cgroupfs, "V2_MOUNT", V2_HYBRID)
    monkeypatch.setattr(cgroupfs, "unified_host", lambda: True)
    cgroup, warnings = cgroupfs.ContainerCgroup.create(PATH, {}, [devices.Rule(False, "a", None, None, "rwm")])
    try:
        assert [(v, d) for v, _, d, _ in cgroup.placements] == [(2, V2_HYBRID + PATH)]
        assert warnings and "eBPF" in warnings[0]               # said, not silently skipped
        cgroup.attach(sleeper.pid)
        assert own_line(sleeper.pid, "") == PATH
        cgroup.freeze(True)
        events = open(os.path.join(V2_HYBRID + PATH, "cgroup.events")).read()
        assert cgroup.frozen() and "frozen" in events
        cgroup.freeze(False)
        assert not cgroup.frozen()
        assert cgroup.mount_view() == [(2, "", V2_HYBRID + PATH)]
    finally:
        cgroup.remove()
    assert sleeper.wait(timeout=30) == -signal.SIGKILL
    assert not os.path.exists(os.path.dirname(V2_HYBRID + PATH))


def test_v2_limit_without_its_controller_is_refused_and_undone(monkeypatch):
    require_root()
    if not os.path.exists(os.path.join(V2_HYBRID, "cgroup.controllers")):
        pytest.skip(f"no cgroup v2 mount at {V2_HYBRID}")
    if "pids" in open(os.path.join(V2_HYBRID, "cgroup.controllers")).read().split():
        pytest.skip("the v2 mount offers pids here; the refusal cannot be shown")
    monkeypatch.setattr(cgroupfs, "V2_MOUNT", V2_HYBRID)
    monkeypatch.setattr(cgroupfs, "unified_host", lambda: True)
    with pytest.raises(ContainerUnavailable, match="pids not available"):
        cgroupfs.ContainerCgroup.create(PATH, {"pids": {"limit": 5}})
    assert not os.path.exists(os.path.dirname(V2_HYBRID + PATH))
