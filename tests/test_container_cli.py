"""`vmm container rootfs` and `vmm container run`, end to end through the command line.

Runs the `vmm` command as a child process, as a user would. Tests that start containers skip,
with the reason, unless this process can create every namespace kind (root, no sandbox).
"""
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from vmm import paths
from vmm.container import ContainerUnavailable, probe
from vmm.errors import InputError, UsageError

HOSTNAME_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>
int main(int argc, char **argv) {
    struct utsname u;
    uname(&u);
    printf("hostname=%s pid=%d\n", u.nodename, (int)getpid());
    return argc > 1 ? atoi(argv[1]) : 0;
}
"""


def vmm(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "vmm", *map(str, args)], capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=timeout)


def assert_one_line_error(proc, status):
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmm: error:"), proc.stderr
    assert b"Traceback" not in proc.stderr


@pytest.fixture
def containers():
    reason = probe()
    if reason is not None:
        pytest.skip(f"containers unavailable here: {reason}")


@pytest.fixture
def hostname_program(tmp_path):
    """A static program that prints its host name and pid and exits with argv[1]."""
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not installed")
    source, binary = tmp_path / "uname.c", tmp_path / "uname"
    source.write_text(HOSTNAME_C)
    built = subprocess.run([gcc, "-static", "-O1", "-o", str(binary), str(source)], capture_output=True)
    if built.returncode != 0:
        pytest.skip(f"gcc -static failed: {built.stderr.decode()[-200:]}")
    return binary


@pytest.fixture
def rootfs(tmp_path, hostname_program):
    """A root file system made by `vmm container rootfs`, with hello, exitcode and uname in /bin."""
    if not (paths.PROGRAMS_BUILD / "hello").exists():
        pytest.fail(f"guest programs not built ({paths.PROGRAMS_BUILD}): run `make test`, which builds them")
    directory = tmp_path / "root"
    proc = vmm("container", "rootfs", directory, "hello", "exitcode", f"uname={hostname_program}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.decode().strip() == str(directory.resolve())
    return directory


def test_rootfs_layout(rootfs):
    for name in ("bin", "dev", "etc", "proc", "tmp"):
        assert (rootfs / name).is_dir()
    for program in ("hello", "exitcode", "uname"):
        assert os.access(rootfs / "bin" / program, os.X_OK)


def test_run_hello(containers, rootfs):
    proc = vmm("container", "run", rootfs, "--", "/bin/hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello from ring 3\n"


def test_exit_status_propagates(containers, rootfs):
    proc = vmm("container", "run", rootfs, "--", "exitcode", "7")       # found in the container's PATH
    assert proc.returncode == 7, proc.stderr
    assert proc.stdout == b"exiting with status 7\n"
    assert vmm("container", "run", rootfs, "--", "/bin/exitcode").returncode == 42


def test_hostname_and_pid_namespace(containers, rootfs):
    proc = vmm("container", "run", rootfs, "--hostname", "guest-7", "--", "/bin/uname", "3")
    assert proc.returncode == 3, proc.stderr
    assert proc.stdout == b"hostname=guest-7 pid=1\n"
    default = vmm("container", "run", rootfs, "--", "/bin/uname")
    assert default.returncode == 0 and default.stdout == b"hostname=container pid=1\n"


def test_limits_accepted(containers, rootfs):
    from vmm.container import cgroups
    reason = cgroups.probe()
    if reason is not None:
        pytest.skip(f"cgroup limits unavailable: {reason}")
    proc = vmm("container", "run", rootfs, "--memory", "64M", "--cpu-shares", "512", "--", "/bin/hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello from ring 3\n"


def test_missing_rootfs_is_one_line_error(tmp_path):
    proc = vmm("container", "run", tmp_path / "nowhere", "--", "/bin/hello")
    assert_one_line_error(proc, InputError.exit_status)
    assert b"nowhere" in proc.stderr


def test_missing_program_in_rootfs(containers, rootfs):
    assert_one_line_error(vmm("container", "run", rootfs, "--", "/bin/absent"), InputError.exit_status)


def test_rootfs_with_missing_program(tmp_path):
    assert_one_line_error(vmm("container", "rootfs", tmp_path / "r", tmp_path / "absent"), InputError.exit_status)


@pytest.mark.parametrize("args", [
    ["container"],                                          # no action
    ["container", "run"],                                   # no ROOTFS
    ["container", "run", "/"],                              # no program
    ["container", "run", "/", "--cpu-shares", "many", "--", "/bin/hello"],
    ["container", "run", "/", "--memory", "lots", "--", "/bin/hello"],
    ["container", "rootfs", "dir"],                         # no programs
    ["container", "rootfs", "dir", "hello", "--", "x"],     # `--` is only for run
    ["test", "hello", "--", "x"],                           # still only for run commands
])
def test_usage_errors(args, tmp_path):
    rootfs = tmp_path / "r"
    (rootfs / "proc").mkdir(parents=True)
    args = [str(rootfs) if arg == "/" else arg for arg in args]
    assert_one_line_error(vmm(*args), UsageError.exit_status)


def test_help_lists_container_statuses():
    proc = vmm("container", "run", "--help")
    assert proc.returncode == 0
    assert b"143" in proc.stdout and b"69" in proc.stdout


def test_unavailable_without_root():
    """Not root: one line, status 69 (run as `nobody` where this process may switch users)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the CLI as another user")
    with tempfile.TemporaryDirectory() as directory:     # pytest's tmp_path is private to root
        os.chmod(directory, 0o755)
        root = os.path.join(directory, "r")
        os.makedirs(os.path.join(root, "proc"))
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               sys.executable, "-m", "vmm", "container", "run", root, "--", "/bin/hello"],
                              capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
                              cwd=str(paths.REPO_ROOT))
    if b"No module named" in proc.stderr or b"Permission denied" in proc.stderr:
        pytest.skip(f"the package is not readable by nobody here: {proc.stderr.decode()[-200:]}")
    assert_one_line_error(proc, ContainerUnavailable.exit_status)
