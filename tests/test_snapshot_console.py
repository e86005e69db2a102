"""Ctrl-A s on the console (a real pseudo-terminal): `vmm run --snapshot-file` saves the VM and
goes on; the snapshot restores with `vmm restore` on either engine."""
import os
import pty
import subprocess
import sys

import pytest

from conftest import engine_params
from test_terminal import read_until, wait_for_raw_mode


@pytest.mark.parametrize("engine", engine_params())
def test_ctrl_a_s_saves_and_goes_on(engine, kernel_path, tmp_path):
    snapshot = str(tmp_path / "snap-{n}")
    main_fd, terminal_fd = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "vmm", "run", "--accel", engine, "--initrd", "echo",
                             "--snapshot-file", snapshot], stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd)
    try:
        wait_for_raw_mode(terminal_fd)
        os.write(main_fd, b"half a li\x01s")            # the guest sees "half a li", then the save
        assert b"vmm: snapshot saved to " + str(tmp_path / "snap-0").encode() in read_until(main_fd, b"paused")
        os.write(main_fd, b"ne\r")
        assert b"echo: half a line" in read_until(main_fd, b"echo: half a line")
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        os.close(main_fd)
        os.close(terminal_fd)
    for other in ("unicorn", engine):
        restored = subprocess.run([sys.executable, "-m", "vmm", "restore", str(tmp_path / "snap-0"), "--accel", other],
                                  input=b"ne, restored\n", capture_output=True, timeout=60)
        assert (restored.returncode, restored.stdout) == (0, b"echo: half a line, restored\n"), restored.stderr
