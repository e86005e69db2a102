"""vmm/host_run.py, the host runs the guest tests compare the VM with: the program sees an
ordinary process's life (not PID 1: default signal actions apply), and nothing it starts
outlives it: not a background child, not a daemon in its own session, not after a timeout."""
import os
import signal
import subprocess
import sys
import time

import pytest

from vmm import host_run, paths

ROOTFS = paths.GUEST_BUILD / "rootfs"
BUSYBOX = "/bin/busybox"


@pytest.fixture(autouse=True)
def needs_root_and_rootfs():
    if os.geteuid() != 0:
        pytest.skip("host runs need root (chroot, namespaces)")
    if not ROOTFS.is_dir():
        pytest.fail(f"{ROOTFS} not built: `make test` builds it")


def sh(script: str, timeout: float = 30.0):
    return host_run.run(ROOTFS, ["/bin/sh", "-c", script], timeout=timeout)


def left_behind(wait: float = 5.0) -> list:
    """Processes still running a program of the root file system, after up to `wait` seconds
    (a namespace's processes are killed asynchronously)."""
    deadline = time.monotonic() + wait
    while (found := host_run.processes_in(ROOTFS)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found


def test_status_output_and_an_ordinary_pid():
    status, output = sh("echo pid $$; exit 7")
    assert (status, output) == (7, b"pid 2\n")          # PID 1 is the reaper, not the program


def test_a_signal_kills_it_as_anywhere():
    status, output = sh("kill -TERM $$; echo survived")
    assert (status, output) == (143, b"")


def test_a_background_child_is_gone():
    status, output = sh(f"{BUSYBOX} sleep 7919 & echo started")
    assert (status, output) == (0, b"started\n")
    assert left_behind() == []


def test_a_daemon_in_its_own_session_is_gone():
    status, output = sh(f"{BUSYBOX} setsid {BUSYBOX} sleep 7920 & echo started")
    assert (status, output) == (0, b"started\n")
    assert left_behind() == []


def test_nothing_is_left_after_a_timeout():
    with pytest.raises(subprocess.TimeoutExpired):
        sh(f"{BUSYBOX} sleep 7921 & {BUSYBOX} sleep 7922", timeout=1.0)
    assert left_behind() == []


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_nothing_is_left_when_the_runner_is_interrupted(signum):
    """Ctrl-C or a kill of the runner (not of its process group) takes the whole run with it."""
    runner = subprocess.Popen([sys.executable, "-m", "vmm.host_run", str(ROOTFS), "/bin/sh", "-c",
                               f"{BUSYBOX} sleep 7923 & echo started; {BUSYBOX} sleep 7924"],
                              stdout=subprocess.PIPE, restore_signals=True)
    try:
        assert runner.stdout.readline() == b"started\n"
        runner.send_signal(signum)
        assert runner.wait(timeout=30) == 128 + signum
    finally:
        runner.kill()
        runner.wait()
        runner.stdout.close()
    assert left_behind() == []


def test_a_root_that_cannot_be_used(tmp_path):
    status, output = host_run.run(tmp_path / "missing", ["/bin/true"])
    assert status == host_run.SETUP_FAILED and output.startswith(b"host_run: ") and output.count(b"\n") == 1


def test_a_program_that_cannot_start():
    status, output = host_run.run(ROOTFS, ["/bin/no-such-program"])
    assert status == host_run.SETUP_FAILED and b"cannot run /bin/no-such-program" in output
