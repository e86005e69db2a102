"""`vmm-oci` driven directly on bundles: the create/start split, state, kill, delete, exec, pause,
hooks, mounts, devices, seccomp, terminal, errors, and what is left behind (nothing).

Where runc applies, the same bundle runs under runc too and the outputs are compared. Every
container here has its own state root (tmp) and a cgroupsPath under pyvmm-oci-test-PID, so a
leftover is found by name. Waits poll for a state with a generous deadline; nothing asserts a time.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from oci_support import (Leftovers, Runtime, base_spec, busybox, make_bundle, make_rootfs, require_containers)

# Their leftover checks read host-wide state: one suite at a time (conftest.py).
pytestmark = pytest.mark.usefixtures("host_state_to_ourselves")

MARKER = f"pyvmm-oci-test-{os.getpid()}"
DEADLINE = 30.0


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory):
    require_containers()
    return make_rootfs(tmp_path_factory.mktemp("rootfs"))


@pytest.fixture
def runtime(tmp_path):
    root = tmp_path / "state"
    leftovers = Leftovers(root, MARKER)
    runtime = Runtime(root)
    yield runtime
    for container_id in os.listdir(root) if root.is_dir() else ():
        runtime.run("delete", "--force", container_id)
    assert leftovers.check() == [] or pytest.fail(f"left behind: {leftovers.check()}")


def spec_for(args, cid, **extra):
    spec = base_spec(args)
    spec["linux"]["cgroupsPath"] = f"/{MARKER}/{cid}"
    for key, value in extra.items():
        spec[key] = value
    return spec


def wait_for(predicate, what):
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)


def run_both(tmp_path, rootfs, spec, name):
    """Run the same bundle under runc and vmm-oci (foreground `run`); (status, stdout) of each."""
    results = {}
    for runtime_name, argv in (("runc", ["runc", "--root", str(tmp_path / "runc-state")]),
                               ("vmm-oci", Runtime(tmp_path / f"{name}-state").argv())):
        if runtime_name == "runc" and shutil.which("runc") is None:
            pytest.skip("runc not installed (make peers)")
        spec = json.loads(json.dumps(spec))
        spec["linux"]["cgroupsPath"] = f"/{MARKER}-{name}-{runtime_name}"     # flat: runc leaves parents
        bundle = make_bundle(tmp_path / f"{name}-{runtime_name}", rootfs, spec)
        result = subprocess.run(argv + ["run", "--bundle", str(bundle), f"{name}-{runtime_name}"],
                                capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        results[runtime_name] = (result.returncode, result.stdout, result.stderr)
    return results


# --- the create/start split -------------------------------------------------------------------

def test_create_waits_for_start_then_runs_and_stops(runtime, rootfs, tmp_path):
    marker = rootfs / "tmp" / "ran-lifecycle"
    marker.unlink(missing_ok=True)
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["sh", "-c", "echo ran > /tmp/ran-lifecycle; exec sleep 1000"],
                                                          "life"))
    pid_file = tmp_path / "pid"
    runtime.run("create", "--bundle", bundle, "--pid-file", pid_file, "life", check=True)
    state = runtime.state("life")
    assert state["status"] == "created" and state["pid"] == int(pid_file.read_text())
    assert state["bundle"] == str(bundle.resolve())
    assert (Path(runtime.root) / "life" / "exec.fifo").exists()
    assert not marker.exists()                              # process.args not applied before start
    assert runtime.run("start", "life", check=True).returncode == 0
    wait_for(marker.exists, "the program to run after start")
    assert runtime.status("life") == "running"
    assert not (Path(runtime.root) / "life" / "exec.fifo").exists()
    second = runtime.run("start", "life")
    assert second.returncode == 75 and "not created" in second.stderr
    busy = runtime.run("delete", "life")
    assert busy.returncode == 75 and "running" in busy.stderr and runtime.status("life") == "running"
    runtime.run("kill", "life", "KILL", check=True)
    wait_for(lambda: runtime.status("life") == "stopped", "stopped after SIGKILL")
    assert "pid" not in runtime.state("life")
    assert runtime.run("kill", "life").returncode == 75      # nothing left to signal
    runtime.run("delete", "life", check=True)
    assert runtime.run("state", "life").returncode == 67
    marker.unlink()


def test_run_exit_status_and_output(runtime, rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["sh", "-c", "echo out; echo err >&2; exit 7"], "st"))
    result = runtime.run("run", "--bundle", bundle, "st")
    assert (result.returncode, result.stdout) == (7, "out\n") and "err" in result.stderr
    bundle = make_bundle(tmp_path / "k", rootfs, spec_for(["sleep", "1000"], "sig"))
    foreground = subprocess.Popen(runtime.argv("run", "--bundle", bundle, "sig"), stdin=subprocess.DEVNULL)
    try:
        wait_for(lambda: runtime.run("state", "sig").returncode == 0 and runtime.status("sig") == "running",
                 "the container to run")
        runtime.run("kill", "sig", "KILL", check=True)
        assert foreground.wait(timeout=60) == 128 + signal.SIGKILL      # and `run` deleted it
    finally:
        foreground.kill()
        foreground.wait()
    assert runtime.run("state", "sig").returncode == 67


def test_errors_have_their_statuses(runtime, rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "err"))
    assert runtime.run("state", "nosuch").returncode == 67
    assert runtime.run("start", "nosuch").returncode == 67
    assert runtime.run("create", "--bundle", tmp_path / "missing", "x").returncode == 66
    assert runtime.run("create", "--bundle", bundle, "bad/id").returncode == 64
    assert runtime.run("frobnicate").returncode == 64
    runtime.run("create", "--bundle", bundle, "err", check=True)
    again = runtime.run("create", "--bundle", bundle, "err")
    assert again.returncode == 73 and "exists already" in again.stderr
    runtime.run("delete", "--force", "err", check=True)
    missing = make_bundle(tmp_path / "m", rootfs, spec_for(["/bin/nosuch"], "missing"))
    failed = runtime.run("create", "--bundle", missing, "missing")
    assert failed.returncode == 71 and "no such file or directory" in failed.stderr
    assert not (Path(runtime.root) / "missing").exists()     # a failed create leaves no state


def test_errors_go_to_the_log_in_the_format_asked(rootfs, tmp_path):
    for fmt in ("text", "json"):
        log = tmp_path / f"log.{fmt}"
        result = Runtime(tmp_path / "state", log=log, log_format=fmt).run("state", "nosuch")
        assert result.returncode == 67
        line = log.read_text().strip()
        if fmt == "json":
            assert json.loads(line)["msg"] == "container nosuch does not exist (in %s)" % (tmp_path / "state")
        else:
            assert "level=error" in line and "container nosuch does not exist" in line


def test_list_shows_the_containers(runtime, rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "listed"))
    runtime.run("create", "--bundle", bundle, "listed", check=True)
    rows = json.loads(runtime.run("list", "--format", "json", check=True).stdout)
    assert [(r["id"], r["status"]) for r in rows] == [("listed", "created")]
    assert runtime.run("list", "-q", check=True).stdout == "listed\n"
    runtime.run("delete", "--force", "listed", check=True)


# --- exec, pause, kill --all ------------------------------------------------------------------------

def test_exec_pause_resume_and_kill_all(runtime, rootfs, tmp_path):
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["sleep", "1000"], "ex"))
    runtime.run("create", "--bundle", bundle, "ex", check=True)
    runtime.run("start", "ex", check=True)
    inside = runtime.run("exec", "ex", "sh", "-c", "echo $$; echo $(tr '\\0' ' ' < /proc/1/cmdline); hostname")
    assert inside.returncode == 0
    pid_line, cmdline, hostname = inside.stdout.splitlines()
    assert pid_line != "1" and cmdline.strip() == "sleep 1000" and hostname == "vmm-oci"
    assert runtime.run("exec", "ex", "sh", "-c", "exit 9").returncode == 9
    detached = runtime.run("exec", "--detach", "--pid-file", tmp_path / "exec.pid", "ex", "sleep", "1000")
    assert detached.returncode == 0
    exec_pid = int((tmp_path / "exec.pid").read_text())
    assert exec_pid in json.loads(runtime.run("ps", "--format", "json", "ex", check=True).stdout)
    runtime.run("pause", "ex", check=True)
    assert runtime.status("ex") == "paused"
    assert runtime.run("exec", "ex", "true").returncode == 75
    assert runtime.run("pause", "ex").returncode == 75
    runtime.run("resume", "ex", check=True)
    assert runtime.status("ex") == "running"
    runtime.run("kill", "--all", "ex", "KILL", check=True)
    wait_for(lambda: runtime.status("ex") == "stopped", "every process killed")
    wait_for(lambda: not os.path.exists(f"/proc/{exec_pid}") or
             open(f"/proc/{exec_pid}/stat").read().split(") ")[1][0] == "Z", "the exec'd process killed")
    runtime.run("delete", "ex", check=True)


def test_namespaces_joined_by_path_and_oom_score_adj(runtime, rootfs, tmp_path):
    """A second container joins the first's PID, network, IPC and UTS namespaces by their
    /proc/PID/ns paths: it sees the first's process as PID 1 and the same namespace inodes."""
    runtime.run("create", "--bundle", make_bundle(tmp_path / "a", rootfs, spec_for(["sleep", "1000"], "owner")),
                "owner", check=True)
    runtime.run("start", "owner", check=True)
    owner = runtime.state("owner")["pid"]
    kinds = {"pid": "pid", "network": "net", "ipc": "ipc", "uts": "uts"}
    spec = spec_for(["sh", "-c", "for n in pid net ipc uts; do readlink /proc/self/ns/$n; done; "
                     "tr '\\0' ' ' < /proc/1/cmdline; echo; hostname; cat /proc/self/oom_score_adj"], "joiner")
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] not in kinds] + [
        {"type": kind, "path": f"/proc/{owner}/ns/{name}"} for kind, name in kinds.items()]
    del spec["hostname"]                        # the UTS namespace is the owner's: its name stays
    spec["process"]["oomScoreAdj"] = 123
    result = runtime.run("run", "--bundle", make_bundle(tmp_path / "b", rootfs, spec), "joiner")
    assert result.returncode == 0, result.stderr
    expected = [os.readlink(f"/proc/{owner}/ns/{name}") for name in kinds.values()]
    assert result.stdout.splitlines() == expected + ["sleep 1000 ", "vmm-oci", "123"]
    missing = spec_for(["true"], "nsgone")
    missing["linux"]["namespaces"] = [n for n in missing["linux"]["namespaces"] if n["type"] != "network"] + [
        {"type": "network", "path": "/proc/999999999/ns/net"}]
    refused = runtime.run("create", "--bundle", make_bundle(tmp_path / "c", rootfs, missing), "nsgone")
    assert refused.returncode != 0 and "/proc/999999999/ns/net" in refused.stderr
    runtime.run("delete", "--force", "owner", check=True)


def test_systemd_cgroup_is_refused_without_systemd(runtime, rootfs, tmp_path):
    if os.path.isdir("/run/systemd/system"):
        pytest.skip("systemd runs here: --systemd-cgroup is accepted (the slice path is checked in test_oci_config)")
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "sd"))
    result = runtime.run("--systemd-cgroup", "create", "--bundle", bundle, "sd")
    assert result.returncode == 64 and "systemd is not running" in result.stderr
    assert not (Path(runtime.root) / "sd").exists()


# --- hooks ------------------------------------------------------------------------------------------

def hook(log, name):
    return {"path": busybox(), "args": ["sh", "-c", f"cat >> {log}; echo ' {name}' >> {log}"]}


def test_hooks_run_in_order_with_the_state_on_stdin(runtime, rootfs, tmp_path):
    log = tmp_path / "hooks.log"
    inside_log = "/tmp/start-hook.log"
    (rootfs / "tmp" / "start-hook.log").unlink(missing_ok=True)
    hooks = {kind: [hook(log, kind)] for kind in ("prestart", "createRuntime", "createContainer", "poststart",
                                                  "poststop")}
    hooks["startContainer"] = [{"path": "/bin/sh", "args": ["sh", "-c", f"cat > {inside_log}"]}]
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "hooks", hooks=hooks))
    runtime.run("create", "--bundle", bundle, "hooks", check=True)
    runtime.run("start", "hooks", check=True)
    wait_for(lambda: runtime.status("hooks") == "stopped", "the container to end")
    runtime.run("delete", "hooks", check=True)
    entries = [line.rsplit("} ", 1) for line in log.read_text().splitlines()]
    kinds = [name for _, name in entries]
    assert kinds == ["prestart", "createRuntime", "createContainer", "poststart", "poststop"]
    states = {name: json.loads(text + "}") for text, name in entries}
    assert [states[k]["status"] for k in kinds] == ["creating", "creating", "creating", "running", "stopped"]
    assert all(states[k]["id"] == "hooks" and states[k]["bundle"] == str(bundle.resolve()) for k in kinds)
    start_state = json.loads((rootfs / "tmp" / "start-hook.log").read_text())
    assert start_state["status"] == "created" and start_state["pid"] == 1      # seen from the container
    (rootfs / "tmp" / "start-hook.log").unlink()


def test_a_failing_prestart_hook_fails_create_and_leaves_nothing(runtime, rootfs, tmp_path):
    hooks = {"prestart": [{"path": busybox(), "args": ["sh", "-c", "echo broken >&2; exit 3"]}]}
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "badhook", hooks=hooks))
    result = runtime.run("create", "--bundle", bundle, "badhook")
    assert result.returncode == 71 and "prestart hook 0" in result.stderr and "broken" in result.stderr
    assert not (Path(runtime.root) / "badhook").exists()


# --- the root file system ----------------------------------------------------------------------------

PROBE = r"""
for m in /proc /dev /dev/pts /dev/shm /sys /data/deep; do grep -q " $m " /proc/mounts && echo "mounted $m"; done
ls /data/deep
ls -ln /dev/pyvmm-null /dev/null /dev/zero /dev/ptmx | awk '{print $1, $5, $6, $NF}'
echo probe > /dev/pyvmm-null && echo "device writable"
touch /bindro/x 2>/dev/null || echo "bind is read-only"
cat /bindro/hello
echo "masked file: $(wc -c < /proc/version) bytes, masked dir: $(ls /sys/firmware | wc -l) entries"
echo 1 > /proc/sys/vm/overcommit_memory 2>/dev/null || echo "/proc/sys is read-only"
touch /newfile && echo "root is writable"
hostname; id
"""


def test_mounts_devices_masked_and_readonly_paths_match_runc(rootfs, tmp_path):
    """A root without /proc, /dev, /sys or the mount points: all are created, as runc creates them."""
    bare = make_rootfs(tmp_path / "bare", with_dirs=False)
    host_dir = tmp_path / "host-dir"
    host_dir.mkdir()
    (host_dir / "hello").write_text("hello from the host\n")
    spec = spec_for(["sh", "-c", PROBE], "mounts")
    spec["mounts"] += [{"destination": "/data/deep", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]},
                       {"destination": "/bindro", "type": "bind", "source": str(host_dir),
                        "options": ["rbind", "ro", "nosuid"]}]
    spec["linux"]["devices"] = [{"type": "c", "path": "/dev/pyvmm-null", "major": 1, "minor": 3, "fileMode": 0o620,
                                 "uid": 0, "gid": 0}]
    spec["linux"]["resources"]["devices"] += [{"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
    spec["linux"]["maskedPaths"] += ["/proc/version"]
    results = run_both(tmp_path, bare, spec, "mounts")
    status, out, err = results["vmm-oci"]
    assert status == 0, err
    assert out == results["runc"][1], (out, results["runc"])
    for line in ("mounted /proc", "mounted /dev", "mounted /data/deep", "crw--w---- 1, 3 /dev/pyvmm-null",
                 "device writable", "bind is read-only", "hello from the host", "/proc/sys is read-only",
                 "root is writable", "masked file: 0 bytes, masked dir: 0 entries"):
        assert line in out


def test_read_only_root_and_user_and_capabilities_match_runc(rootfs, tmp_path):
    spec = spec_for(["sh", "-c", "touch /x 2>/dev/null || echo ro; id; grep Cap /proc/self/status; umask"], "user")
    spec["root"]["readonly"] = True
    spec["process"]["user"] = {"uid": 65534, "gid": 65534, "additionalGids": [5, 7], "umask": 0o027}
    spec["process"]["capabilities"] = {"bounding": ["CAP_KILL", "CAP_CHOWN"], "effective": ["CAP_KILL"],
                                       "permitted": ["CAP_KILL"]}
    results = run_both(tmp_path, rootfs, spec, "user")
    assert results["vmm-oci"][:2] == results["runc"][:2], results
    out = results["vmm-oci"][1]
    assert out.startswith("ro\nuid=65534(nobody) gid=65534 groups=5,7\n") and "CapBnd:\t0000000000000021" in out
    assert out.endswith("0027\n")


def test_seccomp_profile_is_enforced_as_with_runc(rootfs, tmp_path):
    spec = spec_for(["sh", "-c", "mkdir /tmp/denied || echo refused; echo still here"], "seccomp")
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                                              "errnoRet": 1}]}
    results = run_both(tmp_path, rootfs, spec, "seccomp")
    assert results["vmm-oci"][:2] == results["runc"][:2], results
    assert "Operation not permitted" in results["vmm-oci"][2] and "refused\nstill here\n" == results["vmm-oci"][1]


def test_rlimit_above_the_hosts_ceiling_is_reported(runtime, rootfs, tmp_path):
    ceiling = int(Path("/proc/sys/fs/nr_open").read_text())
    spec = spec_for(["true"], "rlimit")
    spec["process"]["rlimits"] = [{"type": "RLIMIT_NOFILE", "soft": ceiling + 1, "hard": ceiling + 1}]
    result = runtime.run("create", "--bundle", make_bundle(tmp_path / "b", rootfs, spec), "rlimit")
    assert result.returncode == 69
    assert "error setting rlimit RLIMIT_NOFILE" in result.stderr and "--ulimit nofile=" in result.stderr


def test_a_capability_the_host_lacks_is_named(runtime, rootfs, tmp_path):
    """Every capability asked for (podman --privileged): where the runtime's own bounding set
    lacks one (CAP_SYS_RESOURCE on this project's machines) runc says "unable to apply caps";
    this runtime names the capability."""
    from vmm.container import capabilities
    held = capabilities.current()["permitted"]
    every = capabilities.NAMES[:capabilities.last_cap() + 1]
    lacking = [name for number, name in enumerate(every) if number not in held]
    if not lacking:
        pytest.skip("this host's runtime holds every capability: the condition does not arise")
    spec = spec_for(["true"], "allcaps")
    spec["process"]["capabilities"] = {kind: list(every) for kind in ("bounding", "effective", "permitted")}
    result = runtime.run("create", "--bundle", make_bundle(tmp_path / "b", rootfs, spec), "allcaps")
    assert result.returncode == 69 and f"asks for {', '.join(lacking)}," in result.stderr
    assert not (Path(runtime.root) / "allcaps").exists()


def test_without_a_mount_namespace_its_mounts_are_undone_by_delete(runtime, rootfs, tmp_path):
    spec = spec_for(["sleep", "1000"], "nomnt")
    spec["linux"]["namespaces"] = [n for n in spec["linux"]["namespaces"] if n["type"] != "mount"]
    bundle = make_bundle(tmp_path / "b", make_rootfs(tmp_path / "own-root"), spec)
    runtime.run("create", "--bundle", bundle, "nomnt", check=True)
    assert any(point.startswith(str(tmp_path / "own-root")) for point in _host_mount_points())
    runtime.run("delete", "--force", "nomnt", check=True)
    assert not any(point.startswith(str(tmp_path / "own-root")) for point in _host_mount_points())


def _host_mount_points():
    with open("/proc/self/mountinfo") as file:
        return [line.split()[4] for line in file]


# --- the terminal -------------------------------------------------------------------------------------

def test_terminal_master_arrives_on_the_console_socket(runtime, rootfs, tmp_path):
    spec = spec_for(["sh", "-c", "tty; echo $TERM; read line; echo got $line"], "tty")
    spec["process"]["terminal"] = True
    spec["process"]["consoleSize"] = {"height": 30, "width": 100}
    bundle = make_bundle(tmp_path / "b", rootfs, spec)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "console.sock"))
    listener.listen(1)
    try:
        runtime.run("create", "--bundle", bundle, "--console-socket", tmp_path / "console.sock", "tty", check=True)
        connection, _ = listener.accept()
        _, fds, _, _ = socket.recv_fds(connection, 1024, 1)
        connection.close()
        master = fds[0]
        runtime.run("start", "tty", check=True)
        os.write(master, b"hello\n")
        output = b""
        while b"got hello" not in output:
            try:
                chunk = os.read(master, 1024)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        os.close(master)
    finally:
        listener.close()
    text = output.decode().replace("\r", "")
    assert text.startswith("/dev/pts/0\nxterm\n") and "got hello" in text
    wait_for(lambda: runtime.status("tty") == "stopped", "the container to end")
    runtime.run("delete", "tty", check=True)
    assert runtime.run("create", "--bundle", bundle, "tty2").returncode == 64      # a terminal needs a socket


def test_run_in_the_foreground_holds_the_terminal_itself(runtime, rootfs, tmp_path):
    """process.terminal without --console-socket: `run` takes the master end and copies stdin and
    stdout through it; the end of a piped stdin reaches the container as end of file (Ctrl-D)."""
    spec = spec_for(["sh", "-c", "tty; read line; echo got $line; read more || echo end of input; exit 4"], "own")
    spec["process"]["terminal"] = True
    bundle = make_bundle(tmp_path / "b", rootfs, spec)
    result = subprocess.run(runtime.argv("run", "--bundle", bundle, "own"), input=b"typed\n", capture_output=True,
                            timeout=60)
    output = result.stdout.decode().replace("\r", "")
    assert result.returncode == 4
    assert "/dev/pts/0\n" in output and "got typed\n" in output and output.endswith("end of input\n")
    assert "typed\n" in output.replace("got typed", "")       # the terminal echoed what was typed


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                                    signal.SIGALRM, signal.SIGRTMIN + 1])
def test_a_signal_during_create_undoes_it(runtime, rootfs, tmp_path, signum):
    """create is stopped while a prestart hook runs: the hook, the init, the cgroup and the state
    are all gone afterwards (the fixture checks), and the status says which signal it was."""
    started = tmp_path / "hook-started"
    hooks = {"prestart": [{"path": busybox(), "args": ["sh", "-c", f"touch {started}; exec sleep 1000"]}]}
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "sig", hooks=hooks))
    create = subprocess.Popen(runtime.argv("create", "--bundle", bundle, "sig"), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(started.exists, "the prestart hook to start")
        assert (Path(runtime.root) / "sig").exists()
        create.send_signal(signum)
        assert create.wait(timeout=60) == 128 + signum
        assert "half" in create.stderr.read().decode()
    finally:
        create.kill()
        create.wait()
        create.stderr.close()
    assert not (Path(runtime.root) / "sig").exists()


@pytest.fixture(scope="module")
def open_rootfs():
    """A root file system that a mapped (non-root) host uid can reach: pytest's folders are 0700."""
    require_containers()
    directory = Path(tempfile.mkdtemp(prefix="pyvmm-oci-userns-"))
    directory.chmod(0o755)
    yield make_rootfs(directory / "rootfs")
    shutil.rmtree(directory)


def test_user_namespace_with_id_maps_matches_runc(open_rootfs, tmp_path):
    rootfs = open_rootfs
    spec = spec_for(["sh", "-c", "id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /dev/null | cut -c1-10; "
                     "grep -E '^(Uid|Gid|CapEff)' /proc/self/status"], "userns")
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
    results = run_both(tmp_path, rootfs, spec, "userns")
    assert results["vmm-oci"][:2] == results["runc"][:2], results
    lines = results["vmm-oci"][1].splitlines()
    assert lines[0].startswith("uid=0(root) gid=0") and lines[1].split() == ["0", "100000", "65536"]
    assert lines[3] == "crw-rw-rw-"                 # the host's /dev/null, bound (mknod is refused)


def test_exec_joins_the_user_namespace(runtime, open_rootfs, tmp_path):
    rootfs = open_rootfs
    spec = spec_for(["sleep", "1000"], "usex")
    spec["linux"]["namespaces"].append({"type": "user"})
    spec["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    spec["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 200000, "size": 1000}]
    runtime.run("create", "--bundle", make_bundle(tmp_path / "b", rootfs, spec), "usex", check=True)
    runtime.run("start", "usex", check=True)
    pid = runtime.state("usex")["pid"]
    host_uid = [line for line in open(f"/proc/{pid}/status") if line.startswith("Uid:")][0].split()[1]
    assert host_uid == "200000"                     # root inside is 200000 outside
    inside = runtime.run("exec", "usex", "sh", "-c", "id -u; cat /proc/self/uid_map", check=True).stdout.split()
    assert inside == ["0", "0", "200000", "1000"]
    runtime.run("delete", "--force", "usex", check=True)


def test_a_root_without_a_dev_mount_runs_twice(runtime, tmp_path):
    """Without a /dev mount the device nodes and /dev symlinks go into the image's own /dev; a
    second container on the same root finds them there (the symlinks are not followed)."""
    root = make_rootfs(tmp_path / "root")
    spec = spec_for(["sh", "-c", "ls -l /dev/stdout | cut -d'>' -f2; echo x > /dev/null && echo ok"], "twice")
    spec["mounts"] = [{"destination": "/proc", "type": "proc", "source": "proc"}]
    bundle = make_bundle(tmp_path / "b", root, spec)
    for attempt in ("first", "second"):
        result = runtime.run("run", "--bundle", bundle, f"twice-{attempt}")
        assert (result.returncode, result.stdout) == (0, " /proc/self/fd/1\nok\n"), result.stderr


def test_sigterm_ends_a_created_container(runtime, rootfs, tmp_path):
    """Its init is PID 1 of the container and waits for `start`; SIGTERM still ends it, as runc's."""
    bundle = make_bundle(tmp_path / "b", rootfs, spec_for(["true"], "term"))
    runtime.run("create", "--bundle", bundle, "term", check=True)
    runtime.run("kill", "term", "TERM", check=True)
    wait_for(lambda: runtime.status("term") == "stopped", "the created container to end on SIGTERM")
    runtime.run("delete", "term", check=True)
