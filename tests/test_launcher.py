"""The `vmm` launcher (vmm/launcher.py): Python started with -I -S, the package and its
dependencies found all the same, exit statuses passed through."""
import os
import subprocess
import sys

from vmm import launcher


def write(tmp_path):
    path = tmp_path / "vmm"
    launcher.write_launcher(str(path))
    return path


def test_it_starts_python_isolated_without_site(tmp_path):
    path = write(tmp_path)
    first = path.read_text().splitlines()[0]
    assert first == f"#!{sys.executable} -IS"
    assert os.access(path, os.X_OK)


def test_it_runs_a_guest_whatever_the_environment_says(tmp_path):
    path = write(tmp_path)
    env = dict(os.environ, PYTHONPATH="/nonexistent", PYTHONSTARTUP="/nonexistent", PYTHONWARNINGS="error",
               VMM_ACCEL="unicorn")
    proc = subprocess.run([str(path), "run", "--initrd", "exitcode", "--", "7"], capture_output=True, env=env,
                          stdin=subprocess.DEVNULL, timeout=120)
    assert (proc.returncode, proc.stdout) == (7, b"exiting with status 7\n"), proc.stderr
    usage = subprocess.run([str(path), "run", "--bogus"], capture_output=True, env=env, timeout=60)
    assert usage.returncode == 64 and usage.stderr.startswith(b"vmm: error:")
