"""The container launcher (vmm/container): namespaces, pivoted root, cgroup limits, cleanup.

The programs run inside are tiny static C programs compiled here with `gcc -static` (one binary,
several modes), plus the guest programs when they are built. Tests that create containers skip,
with the reason, unless this process is root and can create every namespace kind.
"""
import glob
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vmm import paths
from vmm.container import ContainerUnavailable, build_rootfs, cgroups, probe, run_container
from vmm.errors import ImageError, InputError, UsageError

# Their leftover checks read host-wide state: one suite at a time (conftest.py).
pytestmark = pytest.mark.usefixtures("host_state_to_ourselves")

REPO = Path(__file__).resolve().parent.parent

PROBE_C = r"""
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

static void cat(const char *path, const char *prefix) {
    char line[512];
    FILE *f = fopen(path, "r");
    if (!f) { printf("%s!missing\n", prefix); return; }
    while (fgets(line, sizeof line, f)) printf("%s%s", prefix, line);
    fclose(f);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "info";
    if (!strcmp(mode, "exit")) return atoi(argv[2]);
    if (!strcmp(mode, "crash")) { *(volatile int *)0 = 1; return 0; }
    if (!strcmp(mode, "alloc")) {                 /* alloc MiB: touch every page */
        long mib = atol(argv[2]);
        for (long i = 0; i < mib; i++) {
            char *p = malloc(1 << 20);
            if (!p) return 3;
            memset(p, 1, 1 << 20);
        }
        printf("allocated %ld MiB\n", mib);
        return 0;
    }
    if (!strcmp(mode, "wait")) {                  /* wait TOKEN: say ready, sleep until killed */
        printf("ready\n");
        fflush(stdout);
        for (;;) pause();
    }
    struct utsname u;
    uname(&u);
    printf("pid=%d\nhostname=%s\n", (int)getpid(), u.nodename);
    DIR *d = opendir("/proc");
    struct dirent *e;
    printf("procs=");
    while (d && (e = readdir(d)))
        if (e->d_name[0] >= '0' && e->d_name[0] <= '9') printf("%s,", e->d_name);
    printf("\n");
    cat("/proc/net/dev", "netdev:");
    cat("/proc/self/cgroup", "cgroup:");
    return 0;
}
"""


def require_containers():
    reason = probe()
    if reason is not None:
        pytest.skip(f"containers unavailable here: {reason}")


def require_cgroups(memory=True, cpu=False):
    reason = cgroups.probe(memory=memory, cpu=cpu)
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def probe_program(tmp_path_factory):
    directory = tmp_path_factory.mktemp("probe")
    (directory / "probe.c").write_text(PROBE_C)
    result = subprocess.run(["gcc", "-static", "-O2", "-o", str(directory / "probe"), str(directory / "probe.c")],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot build a static test program with `gcc -static`: {result.stderr.strip()[-300:]}")
    return directory / "probe"


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory, probe_program):
    return build_rootfs(tmp_path_factory.mktemp("rootfs"), [probe_program])


def run_captured(rootfs, argv, tmp_path, **options):
    """run_container with the program's stdout in a file: (status, stdout text)."""
    out = tmp_path / "stdout"
    with open(out, "wb") as stream:
        status = run_container(rootfs, argv, stdout=stream, **options)
    return status, out.read_text()


def leftover_cgroups(pid=None):
    """This process's (or pid's) pyvmm cgroups still present in the hierarchies used here."""
    found = cgroups.hierarchies(Path("/proc/self/mountinfo").read_text())
    own = cgroups.own_cgroups(Path("/proc/self/cgroup").read_text())
    parents = set()
    for controller in ("memory", "cpu"):
        try:
            parents.update(cgroups.plan([controller], found, own))
        except ContainerUnavailable:
            pass
    pattern = f"{cgroups.NAME_PREFIX}{pid or os.getpid()}-*"
    return [path for parent in parents for path in glob.glob(os.path.join(parent, pattern))]


def mount_table(*roots):
    """The host's mounts (ids, points, sources) at or beneath `roots` (where a container's
    mounts would leak), to compare before and after: other engineers' containers come and go
    elsewhere on this shared host meanwhile."""
    prefixes = tuple(os.path.join(str(root), "") for root in roots)
    return sorted(" ".join(fields[:5]) for fields in (line.split() for line in
                                                      Path("/proc/self/mountinfo").read_text().splitlines())
                  if os.path.join(fields[4], "").startswith(prefixes))


# --- isolation seen from inside -------------------------------------------------------------------

def test_program_is_pid_1_with_own_hostname_proc_and_network(rootfs, tmp_path):
    require_containers()
    status, out = run_captured(rootfs, ["probe", "info"], tmp_path, hostname="pyvmm-test")
    assert status == 0, out
    fields = dict(line.split("=", 1) for line in out.splitlines() if "=" in line and ":" not in line)
    assert fields["pid"] == "1"
    assert fields["hostname"] == "pyvmm-test" != socket.gethostname()
    assert fields["procs"].strip(",").split(",") == ["1"]          # no host process is visible
    interfaces = [line.split(":")[1].strip() for line in out.splitlines()
                  if line.startswith("netdev:") and line.count(":") >= 2]
    assert interfaces == ["lo"]


def test_default_hostname_is_container(rootfs, tmp_path):
    require_containers()
    _, out = run_captured(rootfs, ["/bin/probe"], tmp_path)
    assert "hostname=container\n" in out


def test_caller_forks_normally_afterwards(rootfs, tmp_path):
    """The PID namespace unshared for the container's fork is undone in the caller."""
    require_containers()
    run_captured(rootfs, ["probe", "exit", "0"], tmp_path)
    assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
    assert subprocess.run(["true"]).returncode == 0


# --- exit statuses ---------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, status", [(["probe", "exit", "0"], 0), (["probe", "exit", "7"], 7),
                                          (["probe", "crash"], 128 + signal.SIGSEGV)])
def test_exit_status_propagates(rootfs, tmp_path, argv, status):
    require_containers()
    assert run_captured(rootfs, argv, tmp_path)[0] == status


def test_guest_program_runs_in_a_container(tmp_path):
    """A built guest program (static Linux x86-64) runs in a rootfs made from its name."""
    require_containers()
    if not paths.program_path("exitcode").is_file():
        pytest.skip("guest programs are not built (make -C guest programs)")
    root = build_rootfs(tmp_path / "root", ["hello", "exitcode"])
    assert run_captured(root, ["hello"], tmp_path) == (0, "hello from ring 3\n")
    assert run_captured(root, ["exitcode"], tmp_path) == (42, "exiting with status 42\n")


# --- cgroup limits ---------------------------------------------------------------------------------

def test_memory_limit_kills_a_program_that_exceeds_it(rootfs, tmp_path):
    require_containers()
    require_cgroups(memory=True)
    assert run_captured(rootfs, ["probe", "alloc", "64"], tmp_path, memory="16M")[0] == 128 + signal.SIGKILL
    assert run_captured(rootfs, ["probe", "alloc", "4"], tmp_path, memory=32 << 20) == (0, "allocated 4 MiB\n")
    assert leftover_cgroups() == []


def test_program_is_in_its_cgroup_before_it_starts(rootfs, tmp_path):
    require_containers()
    require_cgroups(memory=True, cpu=True)
    status, out = run_captured(rootfs, ["probe"], tmp_path, memory="64M", cpu_shares=512)
    assert status == 0
    lines = [line[len("cgroup:"):] for line in out.splitlines() if line.startswith("cgroup:")]
    own = cgroups.own_cgroups("\n".join(lines))
    name = f"/{cgroups.NAME_PREFIX}{os.getpid()}-"
    for controller in ("memory", "cpu"):
        path = own.get(controller) if controller in own else own[""]        # v1 line, else the v2 one
        assert name in path, (controller, lines)


def test_cgroup_limits_are_written(probe_program):
    if os.geteuid() != 0:
        pytest.skip("not root")
    require_cgroups(memory=True, cpu=True)
    group = cgroups.Cgroup.create(memory=48 << 20, cpu_shares=512)
    directories = group.directories
    try:
        expected = {(1, "memory"): ("memory.limit_in_bytes", str(48 << 20)), (2, "memory"): ("memory.max", str(48 << 20)),
                    (1, "cpu"): ("cpu.shares", "512"), (2, "cpu"): ("cpu.weight", str(cgroups.shares_to_weight(512)))}
        used = set()
        for version, controllers, directory in group.placements:
            for controller in controllers:
                name, value = expected[version, controller]
                assert Path(directory, name).read_text().strip() == value
                used.add(controller)
        assert used == {"memory", "cpu"}
    finally:
        group.remove()
    assert not any(os.path.exists(d) for d in directories) and leftover_cgroups() == []


# --- cleanup ---------------------------------------------------------------------------------------

def test_nothing_left_after_success_and_failure(rootfs, tmp_path):
    require_containers()
    limits = {"memory": "32M"} if cgroups.probe(memory=True, cpu=False) is None else {}
    before = mount_table(rootfs, tmp_path)
    assert run_captured(rootfs, ["probe", "exit", "0"], tmp_path, **limits)[0] == 0
    assert run_captured(rootfs, ["probe", "exit", "3"], tmp_path, **limits)[0] == 3
    with pytest.raises(InputError, match="not found"):
        run_captured(rootfs, ["nosuch"], tmp_path, **limits)
    assert leftover_cgroups() == []
    assert mount_table(rootfs, tmp_path) == before


SIGNAL_SCRIPT = """
import sys
from vmm.container import run_container
from vmm.errors import VmmError
try:
    sys.exit(run_container(sys.argv[1], ["probe", "wait", sys.argv[2]], memory="32M" if sys.argv[3] == "1" else None))
except VmmError as error:
    print(error, file=sys.stderr)
    sys.exit(error.exit_status)
except KeyboardInterrupt:
    sys.exit(130)
"""


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_to_launcher_kills_container_and_cleans_up(rootfs, tmp_path, signum, status):
    require_containers()
    limited = cgroups.probe(memory=True, cpu=False) is None
    token = f"pyvmm-test-token-{os.getpid()}-{signum}"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    launcher = subprocess.Popen([sys.executable, "-c", SIGNAL_SCRIPT, str(rootfs), token, "1" if limited else "0"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        assert launcher.stdout.readline() == b"ready\n", launcher.stderr.read()
        if limited:
            assert len(leftover_cgroups(launcher.pid)) >= 1      # the container's cgroup exists now
        launcher.send_signal(signum)
        assert launcher.wait(timeout=10) == status, launcher.stderr.read()
    finally:
        launcher.kill()
        launcher.wait()
    assert leftover_cgroups(launcher.pid) == []
    running = [p for p in glob.glob("/proc/[0-9]*/cmdline") if token.encode() in _read_bytes(p)]
    assert running == []


def _read_bytes(path):
    try:
        return Path(path).read_bytes()
    except OSError:
        return b""


# --- errors ----------------------------------------------------------------------------------------

def test_rootfs_must_be_an_existing_directory(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        run_container(tmp_path / "missing", ["probe"])
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        run_container(tmp_path / "file", ["probe"])
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "proc").write_text("")
    with pytest.raises(InputError, match="/proc is not a directory"):
        run_container(tmp_path / "odd", ["probe"])


def test_missing_mount_points_are_created_as_runc_does(probe_program, tmp_path):
    """A root file system with only a program (no /proc, /dev, /sys) runs; the launcher makes
    the mount points, and /dev holds runc's default devices."""
    require_containers()
    bare = tmp_path / "bare"
    (bare / "bin").mkdir(parents=True)
    subprocess.run(["cp", str(probe_program), str(bare / "bin" / "probe")], check=True)
    status, out = run_captured(bare, ["/bin/probe"], tmp_path)
    assert status == 0 and "procs=1," in out
    assert sorted(p.name for p in bare.iterdir()) == ["bin", "dev", "proc", "sys"]
    assert list((bare / "dev").iterdir()) == []             # the devices were in the container's tmpfs


def test_program_missing_or_not_static(rootfs, tmp_path):
    require_containers()
    with pytest.raises(InputError, match="not found"):
        run_container(rootfs, ["/bin/nosuch"])
    dynamic = tmp_path / "dynamic-root"
    build_rootfs(dynamic, [])
    subprocess.run(["cp", "/bin/true", str(dynamic / "bin" / "true")], check=True)
    with pytest.raises(InputError, match="interpreter"):
        run_container(dynamic, ["true"])


@pytest.mark.parametrize("options", [{"hostname": ""}, {"hostname": "x" * 65}, {"cpu_shares": 1},
                                     {"memory": 0}, {"memory": "lots"}])
def test_bad_options_are_usage_errors(rootfs, options):
    with pytest.raises(UsageError):
        run_container(rootfs, ["probe"], **options)


def test_missing_controller_is_reported(tmp_path):
    v1_cpu = cgroups.Hierarchy(1, str(tmp_path / "cpu"), "/", frozenset({"cpu"}))
    with pytest.raises(ContainerUnavailable, match="memory cgroup controller"):
        cgroups.plan(["memory"], [v1_cpu], {"cpu": "/"})


def test_v2_preferred_where_the_controller_is_enabled(tmp_path):
    v2 = tmp_path / "unified"
    (v2 / "me").mkdir(parents=True)
    (v2 / "cgroup.subtree_control").write_text("memory pids\n")
    (v2 / "me" / "cgroup.subtree_control").write_text("")
    found = [cgroups.Hierarchy(1, str(tmp_path / "memory"), "/", frozenset({"memory"})),
             cgroups.Hierarchy(2, str(v2), "/", frozenset())]
    found.sort(key=lambda h: -h.version)
    own = {"": "/me", "memory": "/a/b"}
    # memory: not delegated to /me, but enabled at the v2 root; cpu: only... nowhere.
    assert cgroups.plan(["memory"], found, own) == {str(v2): (2, ["memory"])}
    (v2 / "cgroup.subtree_control").write_text("pids\n")
    assert cgroups.plan(["memory"], found, own) == {str(tmp_path / "memory" / "a" / "b"): (1, ["memory"])}


def test_mountinfo_parsing_of_a_hybrid_host():
    mountinfo = textwrap.dedent("""\
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
        """)
    found = cgroups.hierarchies(mountinfo)
    assert [(h.version, h.mountpoint) for h in found] == [
        (2, "/sys/fs/cgroup/unified"), (1, "/sys/fs/cgroup/cpu,cpuacct"), (1, "/sys/fs/cgroup/memory")]
    own = cgroups.own_cgroups("4:memory:/outer/job\n2:cpu,cpuacct:/\n0::/\n")
    assert cgroups.own_dir(found[2], own) == "/sys/fs/cgroup/memory/outer/job"
    assert cgroups.own_dir(found[1], own) == "/sys/fs/cgroup/cpu,cpuacct"


def test_shares_to_weight_matches_crun():
    assert [cgroups.shares_to_weight(s) for s in (2, 1024, 262144)] == [1, 100, 10000]


# --- building a root file system -----------------------------------------------------------------

def test_build_rootfs_layout(tmp_path, probe_program):
    root = build_rootfs(tmp_path / "r", [probe_program, f"sh={probe_program}"])
    for name in ("bin", "dev", "etc", "proc", "tmp"):
        assert (root / name).is_dir()
    assert os.access(root / "bin" / "probe", os.X_OK) and os.access(root / "bin" / "sh", os.X_OK)
    with pytest.raises(ImageError, match="dynamically linked"):
        build_rootfs(tmp_path / "r2", ["/bin/true"])
    with pytest.raises(InputError):
        build_rootfs(tmp_path / "r3", [str(tmp_path / "nosuch")])


# --- fallbacks and namespace errors (simulated: the forked child inherits these patches) ---------

def test_chroot_fallback_when_pivot_root_is_refused(rootfs, tmp_path, monkeypatch):
    """As when launched from an initramfs, whose root pivot_root(2) cannot move (EINVAL)."""
    require_containers()
    from vmm.host import container_calls as libc

    def refuse(new_root, put_old):
        raise OSError(22, "pivot_root: Invalid argument", new_root)
    monkeypatch.setattr(libc, "pivot_root", refuse)
    before = mount_table(rootfs, tmp_path)
    status, out = run_captured(rootfs, ["probe"], tmp_path)
    assert status == 0 and "pid=1\n" in out and "procs=1,\n" in out
    assert mount_table(rootfs, tmp_path) == before


@pytest.mark.parametrize("kind, err, message", [
    ("network", 22, "network namespace: this kernel does not support them (CONFIG_NET_NS)"),
    ("pid", 1, "pid namespace: not permitted: run as root"),
    ("uts", 28, "max_uts_namespaces"),
])
def test_namespace_errors_are_one_line(rootfs, monkeypatch, kind, err, message):
    require_containers()
    from vmm.container import namespaces
    from vmm.host import container_calls as libc
    real, flag = libc.unshare, namespaces.KINDS[kind][0]

    def unshare(flags):
        if flags & flag:
            raise OSError(err, os.strerror(err))
        real(flags)
    monkeypatch.setattr(libc, "unshare", unshare)
    with pytest.raises(ContainerUnavailable, match=re.escape(message)):
        run_container(rootfs, ["probe"], memory="16M" if cgroups.probe(memory=True, cpu=False) is None else None)
    assert leftover_cgroups() == []
    assert os.readlink("/proc/self/ns/pid_for_children") == os.readlink("/proc/self/ns/pid")
