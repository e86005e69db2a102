"""The host terminal as the console (vmm/terminal.py), through a real pseudo-terminal: raw mode, the escape sequence,
and the terminal mode restored afterwards."""
import os
import pty
import select
import signal
import subprocess
import sys
import termios
import time

import pytest

from conftest import engine_params


def read_until(fd, needle: bytes, timeout=60.0) -> bytes:
    seen, deadline = b"", time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 4096)
            except OSError:
                break
    return seen


def start(engine, program):
    main_fd, terminal_fd = pty.openpty()
    before = termios.tcgetattr(terminal_fd)
    proc = subprocess.Popen([sys.executable, "-m", "vmm", "run", "--accel", engine, "--initrd", program],
                            stdin=terminal_fd, stdout=terminal_fd, stderr=terminal_fd)
    return proc, main_fd, terminal_fd, before


def wait_for_raw_mode(terminal_fd, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not termios.tcgetattr(terminal_fd)[3] & termios.ICANON:
            return
        time.sleep(0.02)
    pytest.fail("vmm never put the terminal in raw mode")


@pytest.mark.parametrize("engine", engine_params())
def test_typed_line_is_echoed_and_mode_restored(engine, kernel_path):
    proc, main_fd, terminal_fd, before = start(engine, "echo")
    try:
        wait_for_raw_mode(terminal_fd)
        os.write(main_fd, b"typed by a person\r")       # Enter sends CR; ICRNL makes it "\n"
        output = read_until(main_fd, b"echo: typed by a person")
        assert b"echo: typed by a person" in output
        assert proc.wait(timeout=60) == 0
        assert termios.tcgetattr(terminal_fd) == before
    finally:
        proc.kill()
        os.close(main_fd)
        os.close(terminal_fd)


@pytest.mark.parametrize("engine", engine_params())
def test_escape_sequence_ends_the_vm_and_restores_the_terminal(engine, kernel_path):
    proc, main_fd, terminal_fd, before = start(engine, "echo")
    try:
        wait_for_raw_mode(terminal_fd)
        os.write(main_fd, b"\x01x")                     # Ctrl-A x
        assert proc.wait(timeout=30) == 130
        assert b"Ctrl-A x" in read_until(main_fd, b"Ctrl-A x", timeout=5)
        assert termios.tcgetattr(terminal_fd) == before
    finally:
        proc.kill()
        os.close(main_fd)
        os.close(terminal_fd)


@pytest.mark.parametrize("engine", engine_params())
def test_sigterm_restores_the_terminal(engine, kernel_path):
    proc, main_fd, terminal_fd, before = start(engine, "echo")
    try:
        wait_for_raw_mode(terminal_fd)
        proc.terminate()
        assert proc.wait(timeout=30) == 128 + 15
        assert termios.tcgetattr(terminal_fd) == before
    finally:
        proc.kill()
        os.close(main_fd)
        os.close(terminal_fd)


def test_sigterm_right_after_the_switch_to_raw_mode_still_restores(monkeypatch):
    """The handlers are in place before the terminal goes raw: a SIGTERM in between (a slow
    start, as in the nested test run, made this window visible) ends the VM the usual way."""
    from vmm import terminal
    main_fd, terminal_fd = pty.openpty()
    before = termios.tcgetattr(terminal_fd)
    quits = []
    real_tcsetattr = termios.tcsetattr
    sent = []

    def tcsetattr(fd, when, mode):
        real_tcsetattr(fd, when, mode)
        if not sent:
            sent.append(True)
            os.kill(os.getpid(), signal.SIGTERM)         # the first call: the switch to raw mode

    monkeypatch.setattr(terminal.termios, "tcsetattr", tcsetattr)
    previous = signal.signal(signal.SIGTERM, lambda *args: quits.append("before the terminal's handler"))
    try:
        with terminal.Terminal(terminal_fd, feed=lambda data: None, quit=lambda why, status: quits.append(status)):
            pass
        assert quits == [128 + signal.SIGTERM]
        assert termios.tcgetattr(terminal_fd) == before
    finally:
        signal.signal(signal.SIGTERM, previous)
        os.close(main_fd)
        os.close(terminal_fd)
