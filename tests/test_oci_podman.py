"""podman with `--runtime .venv/bin/vmm-oci`, against `--runtime runc` on the same image.

The image is imported with `podman import` from a busybox-static root file system (no registry
is reachable here) that has no /proc, /dev, /sys, /etc or /run: the runtime must create the mount
points, as runc does. Every run passes `--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: a
rootful container's default rlimits (nofile 1048576) exceed this machine's hard limit, which
runc and this runtime both refuse (the last test shows how). After each test no container of
ours is left in podman, and no mount, cgroup, state directory or process of the runtime.
crun is not compared: it refuses this hybrid cgroup host (notes/peers.md).
"""
import json
import os
import pty
import select
import shutil
import subprocess
import tarfile
import time
import uuid

import pytest

from oci_support import PODMAN_MOUNTS, VMM_OCI, Leftovers, cgroup_dirs, libpod_cgroups, make_rootfs, require_containers

# Their leftover checks read host-wide state: one suite at a time (conftest.py).
pytestmark = pytest.mark.usefixtures("host_state_to_ourselves")

ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = f"localhost/pyvmm-oci-test:{os.getpid()}"
NAME_PREFIX = f"pyvmm-oci-test-{os.getpid()}-"     # this process's: other suites may run at once
STATE_ROOT = "/run/vmm-oci"            # vmm-oci's default --root, which podman uses
TIMEOUT = 120


WORKDIR = {}        # conmon writes an `oom` file into its working directory: podman runs in a tmp one


def podman(*args, runtime=VMM_OCI, check=False, **options):
    options.setdefault("cwd", WORKDIR.get("path"))
    options.setdefault("capture_output", True)
    options.setdefault("text", True)
    options.setdefault("timeout", TIMEOUT)
    options.setdefault("stdin", subprocess.DEVNULL)
    result = subprocess.run(["podman", "--runtime", runtime, *args], **options)
    if check and result.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} -> {result.returncode}: {result.stderr}")
    return result


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    require_containers()
    for tool in ("podman", "conmon", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (make peers)")
    WORKDIR["path"] = tmp_path_factory.mktemp("podman-cwd")
    root = make_rootfs(tmp_path_factory.mktemp("image-root"), with_dirs=False)
    tarball = tmp_path_factory.mktemp("image") / "rootfs.tar"
    with tarfile.open(tarball, "w") as archive:
        for entry in sorted(os.listdir(root)):
            archive.add(root / entry, arcname=entry)
    podman("import", str(tarball), IMAGE, check=True)
    # podman's first run mounts its storage (/var/lib/containers/storage/overlay) and keeps it:
    # a run now, so that the tests' before/after mount tables see only the containers' mounts
    podman("run", "--rm", *ULIMITS, IMAGE, "true", runtime="runc", check=True)
    yield IMAGE
    podman("rmi", "--force", IMAGE)


@pytest.fixture
def clean():
    """Checks, after the test, that our containers left nothing (podman, runtime, host)."""
    names = []
    # mounts and runtime processes; podman's own storage and network-namespace mounts come and go
    # with its background cleanup (conmon's exit command), they are not the runtime's. Cgroups:
    # podman names them by container ID (libpod-ID), so the new ones are found by comparing sets.
    leftovers = Leftovers(STATE_ROOT, "libpod-pyvmm-never", PODMAN_MOUNTS)
    before_cgroups = libpod_cgroups()
    before_state = set(os.listdir(STATE_ROOT)) if os.path.isdir(STATE_ROOT) else set()
    started = time.monotonic()

    def name():
        names.append(NAME_PREFIX + uuid.uuid4().hex[:12])
        return names[-1]
    yield name
    ids = []
    for container in names:
        found = podman("inspect", "--format", "{{.Id}}", container)
        if found.returncode == 0:
            ids.append(found.stdout.strip())
            podman("rm", "--force", "--time", "0", container)
    problems = [p for p in leftovers.check() if not p.startswith("state left")]
    after_state = set(os.listdir(STATE_ROOT)) if os.path.isdir(STATE_ROOT) else set()
    new_cgroups = libpod_cgroups() - before_cgroups
    # Other engineers' suites run podman on this host at the same time: only the state
    # directories and cgroups of this test's containers (their IDs from podman's event log,
    # by name) are this test's to account for.
    ids_seen = our_container_ids(names, time.monotonic() - started)
    new_state = (after_state - before_state) & ids_seen
    if new_state:
        problems.append(f"state directories left: {sorted(new_state)}")
    new_cgroups = {path for path in new_cgroups if os.path.basename(path).removeprefix("libpod-") in ids_seen}
    if new_cgroups:
        problems.append(f"container cgroups left: {sorted(new_cgroups)}")
    listed = podman("ps", "--all", "--format", "{{.Names}}").stdout.split()
    ours = [name for name in listed if name.startswith(NAME_PREFIX)]
    if ours:
        problems.append(f"podman containers left: {ours}")
    assert not ids, f"test left containers: {names}"
    assert problems == []


def our_container_ids(names, seconds: float) -> set:
    """The IDs podman's event log gives the containers named `names` in the last `seconds`."""
    events = podman("events", "--since", f"{int(seconds) + 5}s", "--until", "1s", "--format", "{{.ID}} {{.Name}}")
    pairs = (line.split(" ", 1) for line in events.stdout.splitlines() if " " in line)
    return {container_id for container_id, name in pairs if name in names}


def run_both(image, name, command, *options):
    """`podman run --rm` of the same command with runc and with vmm-oci: {runtime: (status, out, err)}."""
    results = {}
    for runtime in ("runc", VMM_OCI):
        result = podman("run", "--rm", "--name", name() + ("-runc" if runtime == "runc" else ""), *ULIMITS, *options,
                        image, *command, runtime=runtime)
        results["runc" if runtime == "runc" else "vmm-oci"] = (result.returncode, result.stdout, result.stderr)
    return results


PROGRAMS = [
    ["sh", "-c", "echo hello; exit 3"],
    ["sh", "-c", "id; ls /; ls /dev | sort; cat /proc/self/status | grep -E '^(Cap|NoNewPrivs|Seccomp)'"],
    ["sh", "-c", "grep -c . /proc/mounts; ls /sys/fs/cgroup | sort; cat /sys/fs/cgroup/pids/pids.max"],
    ["sh", "-c", "echo $PATH; echo $HOME; pwd; hostname | wc -c; ulimit -n; cat /proc/1/cmdline | wc -c"],
    ["sh", "-c", "mount -t tmpfs x /mnt 2>&1; touch /proc/sys/x 2>&1; wc -c < /proc/kcore 2>&1 | head -1"],
    ["/bin/nosuch"],
    ["/etc"],
]


@pytest.mark.parametrize("command", PROGRAMS, ids=[" ".join(c)[:40] for c in PROGRAMS])
def test_run_rm_matches_runc(image, clean, command):
    results = run_both(image, clean, command)
    assert results["vmm-oci"][:2] == results["runc"][:2], results


def test_detached_ps_exec_stop_rm(image, clean):
    name = clean()
    started = podman("run", "-d", "--name", name, *ULIMITS, image, "sleep", "1000", check=True)
    container_id = started.stdout.strip()
    listed = podman("ps", "--filter", f"name={name}", "--format", "{{.Names}} {{.Status}}", check=True).stdout
    assert listed.startswith(f"{name} Up")
    state = json.loads(subprocess.run([VMM_OCI, "state", container_id], capture_output=True, text=True,
                                      check=True).stdout)
    assert state["status"] == "running" and state["id"] == container_id
    inside = podman("exec", name, "sh", "-c", "echo in $(hostname); echo $(tr '\\0' ' ' < /proc/1/cmdline)",
                    check=True)
    assert inside.stdout == f"in {container_id[:12]}\nsleep 1000\n"
    assert podman("exec", name, "sh", "-c", "exit 6").returncode == 6
    assert podman("exec", name, "/bin/nosuch").returncode == 127
    status, output = run_in_pty(["podman", "--runtime", VMM_OCI, "exec", "-it", name, "sh", "-c",
                                 "tty; read line; echo got:$line; exit 4"], b"typed\n", WORKDIR["path"], b"/dev/pts/")
    assert status == 4 and "got:typed" in output            # podman exec -it: a terminal through a pty
    podman("pause", name, check=True)
    assert podman("inspect", "--format", "{{.State.Status}}", name).stdout == "paused\n"
    podman("unpause", name, check=True)
    podman("stop", "--time", "1", name, check=True)           # sleep as PID 1 ignores SIGTERM: SIGKILL follows
    exited = podman("ps", "--all", "--filter", f"name={name}", "--format", "{{.Status}}", check=True).stdout
    assert exited.startswith("Exited (137)")
    podman("rm", "--force", name, check=True)
    assert not os.path.exists(os.path.join(STATE_ROOT, container_id))
    assert cgroup_dirs(f"libpod-{container_id}") == []


def test_podman_info_shows_the_runtimes_version(image):
    """podman info runs `RUNTIME --version`, as it does for runc."""
    shown = podman("info", "--format", "{{.Host.OCIRuntime.Version}}", check=True).stdout
    assert shown.startswith("vmm-oci version ") and "spec: 1." in shown


def test_rm_force_of_a_running_container(image, clean):
    name = clean()
    container_id = podman("run", "-d", "--name", name, *ULIMITS, image, "sleep", "1000", check=True).stdout.strip()
    podman("rm", "--force", "--time", "0", name, check=True)
    assert podman("inspect", name).returncode != 0
    assert cgroup_dirs(f"libpod-{container_id}") == []


def run_in_pty(argv, stdin_text: bytes, cwd, prompt=b"ready>") -> tuple[int, str]:
    """Run argv with a pseudoterminal as its stdin/stdout/stderr; type stdin_text once `prompt`
    appears; (status, output)."""
    master, slave = pty.openpty()
    process = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True, cwd=cwd)
    os.close(slave)
    output = b""
    typed = False
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        if not typed and prompt in output:
            os.write(master, stdin_text)
            typed = True
        if process.poll() is not None and not ready:
            break
    os.close(master)
    status = process.wait(timeout=TIMEOUT)
    return status, output.decode(errors="replace").replace("\r", "")


def test_interactive_tty_matches_runc(image, clean):
    script = "tty; echo $TERM; printf 'ready>'; read line; echo got:$line; exit 5"
    results = {}
    for runtime in ("runc", VMM_OCI):
        argv = ["podman", "--runtime", runtime, "run", "--rm", "-it", "--name", clean(), *ULIMITS, image,
                "sh", "-c", script]
        results[runtime] = run_in_pty(argv, b"typed words\n", cwd=WORKDIR["path"])
    assert results[VMM_OCI] == results["runc"]
    status, output = results[VMM_OCI]
    assert status == 5 and "/dev/pts/0\nxterm\n" in output and "got:typed words" in output


def test_memory_limit_is_enforced(image, clean):
    """`tail` keeps a line that never ends: past the limit the OOM killer ends the container (137)."""
    reads = run_both(image, clean, ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes"],
                     "--memory", "32m")
    assert reads["vmm-oci"][:2] == reads["runc"][:2] == (0, f"{32 << 20}\n")
    hog = run_both(image, clean, ["tail", "-n", "1", "/dev/zero"], "--memory", "32m", "--memory-swap", "32m")
    assert hog["vmm-oci"][0] == hog["runc"][0] == 137
    small = run_both(image, clean, ["sh", "-c", "head -c 4m /dev/zero | tr '\\0' a | tail -n 1 | wc -c"],
                     "--memory", "32m")
    assert small["vmm-oci"][:2] == small["runc"][:2] == (0, f"{4 << 20}\n")


def test_cpu_shares_and_quota_land_as_with_runc(image, clean):
    """--cpus 0.5 is a CFS quota of 50 ms per 100 ms period; the container reads its own cgroup."""
    files = "cat /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"
    results = run_both(image, clean, ["sh", "-c", files], "--cpus", "0.5", "--cpu-shares", "512")
    assert results["vmm-oci"][:2] == results["runc"][:2] == (0, "512\n50000\n100000\n"), results


def test_pids_limit_is_enforced(image, clean):
    """Under a limit of 8: the shell, 6 sleeps and cat fill the cgroup (cat sees 8); a 7th sleep
    takes cat's place, and the 8th fork fails, which ends busybox's sh with status 2."""
    script = ("for i in 1 2 3 4 5 6; do sleep 100 & done; cat /sys/fs/cgroup/pids/pids.current; "
              "sleep 100 & sleep 100 & echo unreachable")
    results = run_both(image, clean, ["sh", "-c", script], "--pids-limit", "8")
    assert results["vmm-oci"][:2] == results["runc"][:2] == (2, "8\n"), results
    assert "can't fork" in results["vmm-oci"][2]


def test_default_rlimits_above_this_hosts_ceiling_are_reported(image, clean):
    """Without --ulimit, podman asks nofile=1048576, above the hard limit this runtime may set here."""
    hard_nofile = int(subprocess.run(["sh", "-c", "ulimit -Hn"], capture_output=True, text=True).stdout)
    if hard_nofile >= 1048576:
        pytest.skip("this host's hard RLIMIT_NOFILE allows podman's default; the condition does not arise")
    ours = podman("run", "--rm", "--name", clean(), image, "true")
    theirs = podman("run", "--rm", "--name", clean(), image, "true", runtime="runc")
    assert ours.returncode == theirs.returncode == 126
    assert "error setting rlimit RLIMIT_NOFILE" in ours.stderr and "--ulimit nofile=" in ours.stderr


# --- the VM mode: `--runtime vmm-oci-vm`, the program in a microVM on the image's root -------------

VMM_OCI_VM = os.path.join(os.path.dirname(VMM_OCI), "vmm-oci-vm")


@pytest.fixture
def vm_mode(image):
    from vmm.oci.vm import unavailable_reason
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"VM mode unavailable: {reason}")
    return image


# The tiny kernel's command line carries the program's arguments: none may hold white space.
VM_PROGRAMS = [["/bin/busybox", "echo", "hello"], ["/bin/false"], ["/bin/busybox", "ls", "/bin/busybox"],
               ["/bin/nosuch"]]


@pytest.mark.parametrize("command", VM_PROGRAMS, ids=[" ".join(c) for c in VM_PROGRAMS])
def test_vm_mode_output_and_status_match_runc(vm_mode, clean, command):
    ours = podman("run", "--rm", "--name", clean(), *ULIMITS, vm_mode, *command, runtime=VMM_OCI_VM)
    theirs = podman("run", "--rm", "--name", clean(), *ULIMITS, vm_mode, *command, runtime="runc")
    if command == ["/bin/nosuch"]:      # runc refuses at create (127); the VM's kernel finds no program
        assert theirs.returncode == 127 and ours.returncode != 0
        return
    assert (ours.returncode, ours.stdout) == (theirs.returncode, theirs.stdout), (ours.stderr, theirs.stderr)


def test_vm_mode_memory_limit_is_the_guests_ram(vm_mode, clean):
    result = podman("run", "--rm", "--name", clean(), *ULIMITS, "--memory", "48m", vm_mode,
                    "/bin/busybox", "head", "-1", "/proc/meminfo", runtime=VMM_OCI_VM, check=True)
    total_kib = int(result.stdout.split()[1])
    assert 40 * 1024 < total_kib <= 48 * 1024          # the guest's RAM, less what its kernel keeps


def test_vm_mode_detached_stop_and_no_exec(vm_mode, clean):
    name = clean()
    container_id = podman("run", "-d", "--name", name, *ULIMITS, vm_mode, "/bin/busybox", "sleep", "1000",
                          runtime=VMM_OCI_VM, check=True).stdout.strip()
    state = json.loads(subprocess.run([VMM_OCI_VM, "state", container_id], capture_output=True, text=True,
                                      check=True).stdout)
    assert state["status"] == "running"
    with open(f"/proc/{state['pid']}/cmdline", "rb") as file:      # the container's pid is the VMM's
        assert b"--rootfs" in file.read()
    refused = podman("exec", name, "/bin/busybox", "true", runtime=VMM_OCI_VM)
    assert refused.returncode != 0 and "microVM" in refused.stderr
    podman("stop", "--time", "5", name, runtime=VMM_OCI_VM, check=True)   # SIGTERM stops the VM
    status = podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert status == "143"
    podman("rm", "--force", name, check=True)
    assert cgroup_dirs(f"libpod-{container_id}") == []


def test_vm_mode_terminal(vm_mode, clean):
    argv = ["podman", "--runtime", VMM_OCI_VM, "run", "--rm", "-it", "--name", clean(), *ULIMITS, vm_mode,
            "/bin/busybox", "sh"]
    status, output = run_in_pty(argv, b"echo typed-in-the-vm; exit 6\n", cwd=WORKDIR["path"], prompt=b"# ")
    assert status == 6 and "typed-in-the-vm" in output
