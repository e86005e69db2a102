"""Careless and hostile input, class by class, from the command line (issue 20): each run ends
with its documented status and one line on stderr, writes nothing outside the test's own
temporary tree, and leaves nothing behind (scratch folders, cgroups, terminal modes, child
processes). Subprocess timeouts only bound a hang; nothing here asserts a duration.
"""
import os
import pty
import signal
import stat
import subprocess
import sys
import tempfile
import termios
import time

import pytest

from conftest import _probe
from elf_builder import elf32, elf64, pvh_note
from vmm import paths, signals
from vmm.container import cgroups
from vmm.container import probe as container_probe
from vmm.kvm import kick

ENTRY = 0x100000
HLT = b"\xf4"
ECHO_PROGRAM = "echo"               # reads the console: a guest that waits for us
BOUND = 120                         # seconds: a hang fails the test, nothing here is timed


def vmm_command(*args):
    return [sys.executable, "-m", "vmm", *args]


def vmm(*args, stdin=b"", env=None, **kwargs):
    return subprocess.run(vmm_command(*args), input=stdin, capture_output=True, timeout=BOUND,
                          env=dict(os.environ, **(env or {})), cwd=str(paths.REPO_ROOT), **kwargs)


def one_line(proc, status, *words):
    """The run ended with `status` and exactly one `vmm: error:` line naming `words`."""
    text = proc.stderr.decode(errors="replace")
    lines = text.strip().splitlines()
    assert proc.returncode == status, text
    assert len(lines) == 1 and lines[0].startswith("vmm: error:"), text
    assert "Traceback" not in text
    for word in words:
        assert word in lines[0], lines[0]


def kernel(tmp_path, code=HLT, name="k.elf"):
    path = tmp_path / name
    path.write_bytes(elf64([(ENTRY, code, len(code))], notes=pvh_note(ENTRY)))
    return str(path)


def snapshot(root) -> dict:
    """Every path under `root` with its type, mode and contents (or link target)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                found[path] = ("link", os.readlink(path))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    found[path] = ("file", stat.S_IMODE(st.st_mode), f.read())
            else:
                found[path] = ("other", st.st_mode)
    return found


def dead_pid() -> int:
    """The PID of a process that has already exited (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


# --- 1. the root file system never leads out of DIR ---------------------------------------------------

@pytest.fixture
def host_tree(tmp_path):
    """A sentinel "host" folder, and a rootfs whose folders are links into it."""
    host = tmp_path / "host"
    (host / "dir").mkdir(parents=True)
    (host / "dir" / "hello").write_bytes(b"host file\n")
    os.chmod(host / "dir", 0o755)
    return host


@pytest.mark.parametrize("link, target", [("bin", "abs"), ("tmp", "abs"), ("dev", "abs"), ("etc", "up"),
                                          ("proc", "proc-self")])
def test_rootfs_never_follows_a_link_out_of_its_tree(tmp_path, host_tree, link, target):
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    destination = {"abs": str(host_tree / "dir"), "up": "../host/dir", "proc-self": "/proc/self/cwd"}[target]
    os.symlink(destination, rootfs / link)
    before = snapshot(host_tree)
    proc = vmm("container", "rootfs", str(rootfs), "hello")
    one_line(proc, 66, f"{rootfs}/{link}", "leads out")
    assert snapshot(host_tree) == before                 # not a byte, mode or device node changed
    assert stat.S_IMODE(os.stat(host_tree / "dir").st_mode) == 0o755


def test_rootfs_follows_a_link_that_stays_inside(tmp_path):
    rootfs = tmp_path / "rootfs"
    (rootfs / "usr" / "bin").mkdir(parents=True)
    os.symlink("usr/bin", rootfs / "bin")
    proc = vmm("container", "rootfs", str(rootfs), "hello")
    assert proc.returncode == 0, proc.stderr
    assert (rootfs / "usr" / "bin" / "hello").read_bytes() == paths.program_path("hello").read_bytes()


def test_rootfs_replaces_a_program_link_instead_of_writing_through_it(tmp_path, host_tree):
    rootfs = tmp_path / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    os.symlink(str(host_tree / "dir" / "hello"), rootfs / "bin" / "hello")
    before = snapshot(host_tree)
    assert vmm("container", "rootfs", str(rootfs), "hello").returncode == 0
    assert snapshot(host_tree) == before
    assert not os.path.islink(rootfs / "bin" / "hello")


@pytest.mark.parametrize("where, status", [("/", 64), ("/usr", 64), ("/proc/pyvmm-test", 64),
                                           ("/sys/pyvmm-test", 64), ("FILE", 66)])
def test_rootfs_refuses_system_folders_and_files(tmp_path, where, status):
    if where == "FILE":
        where = str(tmp_path / "a-file")
        open(where, "w").close()
    existed = os.path.exists("/bin/hello")
    one_line(vmm("container", "rootfs", where, "hello"), status)
    assert os.path.exists("/bin/hello") == existed


@pytest.mark.parametrize("rootfs", ["/", "/usr", "/proc"])
def test_container_run_refuses_the_hosts_own_folders(rootfs):
    one_line(vmm("container", "run", rootfs, "--", "/bin/true"), 64, rootfs)


# --- 2. nothing unbounded is read ---------------------------------------------------------------------

def run_with_rusage(tmp_path, *args):
    """(CompletedProcess, that child's own resource usage), for a `vmm` run."""
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        child = subprocess.Popen(vmm_command(*args), stdout=stdout, stderr=stderr, stdin=subprocess.DEVNULL,
                                 cwd=str(paths.REPO_ROOT))
        _, status, usage = os.wait4(child.pid, 0)
    return subprocess.CompletedProcess(args, os.waitstatus_to_exitcode(status), out.read_bytes(),
                                       err.read_bytes()), usage


@pytest.mark.parametrize("option", ["KERNEL", "--initrd", "--bios"])
def test_a_sparse_10_gib_file_is_refused_before_it_is_read(tmp_path, option):
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(10 << 30)
    args = [str(big)] if option == "KERNEL" else [option, str(big)]
    proc, usage = run_with_rusage(tmp_path, "run", *args)
    one_line(proc, 65, "10.0 GiB", "does not fit")
    # A child's peak RSS starts at its parent's (fork, then exec, keep the high-water mark), so
    # the baseline is a run refused at once in the same way: a missing file.
    _, baseline = run_with_rusage(tmp_path, "run", *(args[:-1] + [str(tmp_path / "missing")]))
    assert usage.ru_maxrss < baseline.ru_maxrss + (64 << 10)   # KiB: sized, not read (it was 10.5 GB)


@pytest.mark.parametrize("option", ["KERNEL", "--initrd", "--bios"])
def test_dev_zero_is_not_an_input_file(option):
    args = ["/dev/zero"] if option == "KERNEL" else [option, "/dev/zero"]
    one_line(vmm("run", *args), 66, "/dev/zero", "character device")


# --- 3. special files never block -----------------------------------------------------------------------

@pytest.mark.parametrize("option", ["KERNEL", "--initrd", "--bios", "--disk", "--serial"])
def test_a_fifo_is_refused_without_blocking(tmp_path, option):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = {"KERNEL": [str(fifo)], "--initrd": ["--initrd", str(fifo)], "--bios": ["--bios", str(fifo)],
            "--disk": ["--disk", f"{fifo},ro"], "--serial": ["--serial", f"file:{fifo}"]}[option]
    one_line(vmm("run", *args), 66, str(fifo))


def test_bench_json_output_is_checked_before_the_benchmark_runs(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    one_line(vmm("bench", "startup", "--json", str(fifo)), 66, str(fifo), "FIFO")
    one_line(vmm("bench", "startup", "--json", str(tmp_path / "missing" / "r.json")), 66, "does not exist")
    one_line(vmm("bench", "startup", "--json", str(tmp_path)), 66, "directory")


def test_serial_output_to_a_fifo_with_a_reader_works(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        proc = vmm("run", "--serial", f"file:{fifo}")
        os.set_blocking(reader, False)
        assert proc.returncode == 0, proc.stderr
        assert os.read(reader, 4096) == b"hello from ring 3\n"
    finally:
        os.close(reader)


# --- 4. one disk, one writer -----------------------------------------------------------------------------

@pytest.fixture
def disk(tmp_path):
    path = tmp_path / "d.img"
    with open(path, "wb") as f:
        f.truncate(1 << 20)
    return path


def test_an_image_attached_twice_is_refused(disk):
    before = disk.read_bytes()
    one_line(vmm("run", "--disk", str(disk), "--disk", f"{disk},ro"), 66, "attached twice")
    one_line(vmm("run", "--disk", f"{disk},ro", "--disk", str(disk)), 66, "attached twice")
    assert disk.read_bytes() == before
    assert vmm("run", "--disk", f"{disk},ro", "--disk", f"{disk},ro").returncode == 0     # readers share


def waiting_vm(*args):
    """A `vmm run --initrd echo` that waits on its console (a pipe we hold) until we close it."""
    return subprocess.Popen(vmm_command("run", "--initrd", ECHO_PROGRAM, *args), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(paths.REPO_ROOT))


def wait_for_lock(path, pid):
    """Until process `pid` holds a lock on `path` (its disk is attached)."""
    ino = os.stat(path).st_ino
    deadline = time.monotonic() + BOUND
    while time.monotonic() < deadline:
        for fd in os.listdir(f"/proc/{pid}/fdinfo"):
            try:
                text = open(f"/proc/{pid}/fdinfo/{fd}").read()
            except OSError:
                continue
            if any(line.startswith("lock:") and line.split()[6].endswith(f":{ino}") for line in text.splitlines()):
                return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} never locked {path}")


@pytest.mark.parametrize("first, second", [("", ",ro"), (",ro", ""), ("", "")])
def test_a_second_vm_cannot_share_a_written_image(disk, first, second):
    holder = waiting_vm("--disk", f"{disk}{first}")
    try:
        wait_for_lock(disk, holder.pid)
        one_line(vmm("run", "--disk", f"{disk}{second}"), 66, f"process {holder.pid}", "holds it")
    finally:
        holder.communicate(b"", timeout=BOUND)
    assert holder.returncode == 0, holder.stderr


def test_qemu_and_vmm_see_each_others_locks(disk, qemu):
    """QEMU's own image locking is the oracle: each refuses an image the other writes."""
    qemu_args = [qemu, "-M", "microvm", "-display", "none", "-nodefaults", "-S",
                 "-drive", f"file={disk},format=raw,if=none,id=d", "-device", "virtio-blk-device,drive=d"]
    holder = subprocess.Popen(qemu_args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    try:
        wait_for_lock(disk, holder.pid)
        one_line(vmm("run", "--disk", str(disk)), 66, f"process {holder.pid}", "qemu-system-x86_64")
        one_line(vmm("run", "--disk", f"{disk},ro"), 66, "qemu-system-x86_64")
    finally:
        holder.kill()
        holder.wait(timeout=BOUND)
    ours = waiting_vm("--disk", str(disk))
    try:
        wait_for_lock(disk, ours.pid)
        theirs = subprocess.run(qemu_args[:-4] + ["-drive", f"file={disk},format=raw,if=none,id=d",
                                                 "-device", "virtio-blk-device,drive=d"],
                                capture_output=True, timeout=BOUND)
        assert theirs.returncode != 0 and b'Failed to get "write" lock' in theirs.stderr, theirs.stderr
    finally:
        ours.communicate(b"", timeout=BOUND)


def test_a_read_only_file_needs_ro_for_root_too(disk):
    disk.chmod(0o444)
    one_line(vmm("run", "--disk", str(disk)), 66, "read-only", ",ro")
    assert vmm("run", "--disk", f"{disk},ro").returncode == 0


# --- 5. no option is ignored --------------------------------------------------------------------------

@pytest.mark.parametrize("args", [["--gdb", ""], ["--trace", ""], ["--trace-exits", ""], ["--initrd", ""],
                                  ["--bios", ""], ["--serial", ""], [""], ["--gdb-wait"],
                                  ["--timeout", "nan"], ["--timeout", "inf"], ["--timeout", "0"]])
def test_empty_or_meaningless_options_are_usage_errors(args):
    one_line(vmm("run", *args), 64)


def test_timeout_bounds_a_gdb_session_with_no_client():
    proc = vmm("run", "--gdb", "127.0.0.1:0", "--gdb-wait", "--timeout", "0.5")
    assert proc.returncode == 72, proc.stderr
    assert b"--timeout of 0.5 s passed while debugging" in proc.stderr


# --- 6. signals: everything cleaned up, 128 + N -----------------------------------------------------------

SIGNALS = [signal.SIGHUP, signal.SIGQUIT, signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM,
           signal.SIGRTMIN + 1]


def test_every_terminating_signal_is_handled_and_the_kick_signal_is_not():
    for name in ("SIGHUP", "SIGQUIT", "SIGTERM", "SIGUSR1", "SIGUSR2", "SIGALRM", "SIGVTALRM", "SIGPROF",
                 "SIGXCPU", "SIGPWR"):
        assert getattr(signal, name) in signals.TERMINATING, name
    assert kick.KICK_SIGNAL not in signals.TERMINATING
    assert set(range(kick.KICK_SIGNAL + 1, signal.SIGRTMAX + 1)) <= set(signals.TERMINATING)


def raw_mode(fd) -> bool:
    return not termios.tcgetattr(fd)[3] & termios.ICANON


@pytest.mark.parametrize("signum", SIGNALS, ids=[signals.signal_name(s) for s in SIGNALS])
def test_vmm_run_on_a_terminal_restores_it_after_a_signal(signum):
    pid, fd = pty.fork()
    if pid == 0:                                         # the child: vmm run on the pty
        os.chdir(str(paths.REPO_ROOT))
        os.execv(sys.executable, vmm_command("run", "--initrd", ECHO_PROGRAM))
    try:
        assert not raw_mode(fd)
        deadline = time.monotonic() + BOUND
        while not raw_mode(fd) and time.monotonic() < deadline:
            time.sleep(0.01)                             # until the console is raw: the VM runs
        assert raw_mode(fd)
        os.kill(pid, signum)
        output = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 128 + signum, output
        assert not raw_mode(fd)                          # the terminal is back as it was
        assert f"ended by {signals.signal_name(signum)}".encode() in output
    finally:
        os.close(fd)


BLOCKED_RUN = r"""
import os, sys, time
import vmm.machine
def blocked(self):
    os.write(1, f"READY {os.getpid()}\n".encode())     # one write: workers share the pipe
    while True:
        time.sleep(1)
vmm.machine.Machine.run = blocked
from vmm.cli import main
sys.exit(main(sys.argv[1:]))
"""


def scratch_folders(pid) -> list:
    return [name for name in os.listdir(tempfile.gettempdir()) if name.startswith(f"pyvmm-disks-{pid}-")]


@pytest.mark.parametrize("jobs", ["1", "2"])
@pytest.mark.parametrize("signum", SIGNALS, ids=[signals.signal_name(s) for s in SIGNALS])
def test_vmm_test_cleans_up_its_disks_and_workers_after_a_signal(signum, jobs):
    """`vmm test` with VMs that never end (Machine.run replaced by a wait, in the child only):
    the signal arrives while every scratch disk exists; none may remain, nor any worker."""
    child = subprocess.Popen([sys.executable, "-c", BLOCKED_RUN, "test", "-j", jobs, "blk", "blk-ro"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(paths.REPO_ROOT))
    ready = [child.stdout.readline().split() for _ in range(int(jobs))]
    workers = [int(pid) for _, pid in ready]
    assert all(scratch_folders(pid) for pid in workers)
    os.kill(child.pid, signum)
    out, err = child.communicate(timeout=BOUND)
    assert child.returncode == 128 + signum, err
    assert err.decode().strip() == f"vmm: error: terminated by {signals.signal_name(signum)}"
    for pid in workers + [child.pid]:
        assert not scratch_folders(pid)
        assert not os.path.exists(f"/proc/{pid}") or pid == child.pid


def test_scratch_folders_of_killed_runs_are_swept(tmp_path):
    gone = dead_pid()
    leftover = tempfile.mkdtemp(prefix=f"pyvmm-disks-{gone}-")
    mine = tempfile.mkdtemp(prefix=f"pyvmm-disks-{os.getpid()}-")     # a live owner: kept
    try:
        assert vmm("test", "hello").returncode == 0
        assert not os.path.exists(leftover) and os.path.exists(mine)
    finally:
        os.rmdir(mine)


@pytest.fixture
def container_rootfs(tmp_path):
    reason = container_probe() or cgroups.probe(cpu=False)
    if reason:
        pytest.skip(f"containers with a memory limit cannot run here: {reason}")
    rootfs = tmp_path / "rootfs"
    assert vmm("container", "rootfs", str(rootfs), "sleep=/bin/busybox").returncode == 0
    return rootfs


def our_cgroups(pid) -> list:
    found, own = cgroups.hierarchies(open("/proc/self/mountinfo").read()), cgroups.own_cgroups(
        open("/proc/self/cgroup").read())
    parents = {cgroups.own_dir(h, own) for h in found} | {h.mountpoint for h in found if h.version == 2}
    return [os.path.join(p, n) for p in parents if os.path.isdir(p) for n in os.listdir(p)
            if n.startswith(f"pyvmm-{pid}-")]


@pytest.mark.parametrize("signum", SIGNALS, ids=[signals.signal_name(s) for s in SIGNALS])
def test_container_run_removes_its_cgroup_after_a_signal(container_rootfs, signum):
    child = subprocess.Popen(vmm_command("container", "run", str(container_rootfs), "--memory", "64M", "--",
                                         "sleep", "100"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             cwd=str(paths.REPO_ROOT))
    deadline = time.monotonic() + BOUND
    while not our_cgroups(child.pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert our_cgroups(child.pid)
    os.kill(child.pid, signum)
    _, err = child.communicate(timeout=BOUND)
    assert child.returncode == 128 + signum, err
    assert not our_cgroups(child.pid)


def test_cgroups_of_killed_launchers_are_swept(container_rootfs):
    gone = dead_pid()
    leftovers = []
    found, own = cgroups.hierarchies(open("/proc/self/mountinfo").read()), cgroups.own_cgroups(
        open("/proc/self/cgroup").read())
    for parent in cgroups.plan(["memory"], found, own):
        leftovers.append(os.path.join(parent, f"pyvmm-{gone}-0"))
        os.mkdir(leftovers[-1])
    proc = vmm("container", "run", str(container_rootfs), "--", "sleep", "0")
    assert proc.returncode == 0, proc.stderr
    assert not any(os.path.exists(path) for path in leftovers)


# --- 7. user mistakes are 64 or 66 -------------------------------------------------------------------

def test_user_mistakes_are_usage_or_file_errors(tmp_path):
    one_line(vmm("run", "--cmdline", os.fsdecode(b"console=\xff\xfe")), 64, "UTF-8")
    one_line(vmm("run", "--", os.fsdecode(b"\xff")), 64, "UTF-8")
    one_line(vmm("run", "--trace", str(tmp_path / "missing" / "t.txt")), 66, "folder does not exist")
    one_line(vmm("run", "--accel", "unicorn", "--trace-exits", str(tmp_path / "missing" / "e.txt")), 66)
    closed_stdin = subprocess.run(vmm_command("run"), capture_output=True, timeout=BOUND,
                                  cwd=str(paths.REPO_ROOT), preexec_fn=lambda: os.close(0))
    one_line(closed_stdin, 64, "standard input is closed")
    closed_stdout = subprocess.run(vmm_command("run"), stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                   timeout=BOUND, cwd=str(paths.REPO_ROOT), preexec_fn=lambda: os.close(1))
    one_line(closed_stdout, 64, "standard output is closed")


def test_mem_advice_beyond_the_maximum_is_an_image_error(tmp_path):
    far = tmp_path / "far.elf"
    far.write_bytes(elf64([(ENTRY, HLT, 1), (0xBFFF_F000, b"\0", 0x2000)], notes=pvh_note(ENTRY)))
    one_line(vmm("run", str(far)), 65, "no guest RAM can hold")


# --- 8. `vmm test` judges as the suite does ----------------------------------------------------------------

def test_vmm_test_honours_requirements_and_counts_skips():
    proc = vmm("test", "cpuid", "hello")
    out = proc.stdout.decode()
    missing = {}
    if _probe("kvm") is None:
        from vmm.engines.kvm import KvmEngine
        missing = KvmEngine.missing_features()
    if "user-cpuid" in missing:
        assert f"SKIP cpuid (kvm: {missing['user-cpuid']})" in out, out
        assert out.splitlines()[-1] == "1 passed, 0 failed, 1 skipped"
    else:
        assert out.splitlines()[-1] == "2 passed, 0 failed, 0 skipped"
    assert proc.returncode == 0, out


# --- 9. smaller ones ---------------------------------------------------------------------------------------

def test_programs_the_tiny_kernel_cannot_run_are_refused_before_boot(tmp_path):
    bits32 = tmp_path / "prog32"
    bits32.write_bytes(elf32([(0x400000, HLT, 1)]))
    one_line(vmm("run", "--initrd", str(bits32)), 65, "32-bit", "static x86-64")
    dynamic = tmp_path / "dyn"
    dynamic.write_bytes(open("/bin/true", "rb").read())
    one_line(vmm("run", "--initrd", str(dynamic)), 65, "dynamically linked", "ld-linux")


def test_output_to_a_full_device_fails_the_run():
    with open("/dev/full", "wb") as full:
        proc = subprocess.run(vmm_command("run"), stdout=full, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                              timeout=BOUND, cwd=str(paths.REPO_ROOT))
        one_line(proc, 74, "No space left on device")
        proc = subprocess.run(vmm_command("test", "hello"), stdout=full, stderr=subprocess.PIPE,
                              timeout=BOUND, cwd=str(paths.REPO_ROOT))
        one_line(proc, 74, "standard output")


CLOSE_WHILE_RUNNING = """
import sys, threading, time
from vmm import Machine, MachineConfig
vm = Machine(MachineConfig(kernel=sys.argv[2], accel=sys.argv[1], timeout=120))
results = []
runner = threading.Thread(target=lambda: results.append(vm.run()))
runner.start()
while not vm._running.locked():             # run() has begun: the vCPU spins in the guest
    time.sleep(0.001)
time.sleep(0.05)
vm.close()
runner.join()
print(results[0].reason, results[0].detail)
"""


@pytest.mark.parametrize("engine", ["kvm", "unicorn"])
def test_close_while_another_thread_runs_stops_the_run(engine, tmp_path):
    """A guest spinning for ever (jmp $), and Machine.close() from another thread: the run
    returns INTERRUPTED there; unicorn once crashed with SIGSEGV (in a child process here)."""
    reason = _probe(engine)
    if reason:
        pytest.skip(f"{engine} unavailable: {reason}")
    proc = subprocess.run([sys.executable, "-c", CLOSE_WHILE_RUNNING, engine, kernel(tmp_path, b"\xeb\xfe")],
                          capture_output=True, timeout=BOUND, cwd=str(paths.REPO_ROOT))
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-2000:]     # no SIGSEGV
    assert proc.stdout.decode().startswith("interrupted the machine was closed while it ran"), proc.stdout
