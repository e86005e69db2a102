"""The control socket (vmm/control): its protocol from a client's side, its file's permissions,
bad requests and clients, and `vmm run --control` / `vmm restore` from the command line."""
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time

import pytest

from snapshot_points import program_config
from vmm import Machine
from vmm.control.server import MAX_LINE, ControlServer
from vmm.errors import InputError

WAIT = 60


class Client:
    def __init__(self, path):
        self.socket = socket.socket(socket.AF_UNIX)
        self.socket.connect(path)
        self.file = self.socket.makefile("rwb")

    def send(self, raw: bytes):
        self.file.write(raw + b"\n")
        self.file.flush()
        return json.loads(self.file.readline())

    def ask(self, **request):
        return self.send(json.dumps(request).encode())

    def close(self):
        self.file.close()
        self.socket.close()


@pytest.fixture
def echo_vm(kernel_path, tmp_path):
    """`echo` waiting for a line (the VM runs until we send one), with a control socket."""
    vm = Machine(program_config("echo", "unicorn", [], timeout=WAIT))
    server = ControlServer(str(tmp_path / "control"), vm, lambda: str(tmp_path / "default-snapshot"))
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", vm.run()), daemon=True)
    thread.start()
    yield vm, server, thread, result
    vm.stop("test over")
    thread.join(WAIT)
    server.close()
    vm.close()


def test_the_protocol(echo_vm, tmp_path):
    vm, server, thread, result = echo_vm
    assert stat.S_IMODE(os.stat(server.path).st_mode) == 0o600
    client = Client(server.path)
    assert client.ask(cmd="stats")["state"] == "running"
    assert client.ask(cmd="pause") == {"ok": True, "state": "paused"}
    saved = client.ask(cmd="snapshot", path=str(tmp_path / "named"))
    assert saved["ok"] and saved["path"] == str(tmp_path / "named") and not saved["diff"]
    assert client.ask(cmd="snapshot")["path"] == str(tmp_path / "default-snapshot")
    stats = client.ask(cmd="stats")
    assert stats["state"] == "paused" and stats["engine"] == "unicorn" and isinstance(stats["exits"], dict)
    assert client.ask(cmd="resume") == {"ok": True, "state": "running"}
    vm.send_input(b"over the socket\n")
    thread.join(WAIT)
    assert result["run"].serial == b"echo: over the socket\n"
    client.close()
    restored = Machine.restore(str(tmp_path / "named"), accel="unicorn", stdin=b"restored\n", timeout=WAIT)
    with restored:
        assert restored.run().serial == b"echo: restored\n"


def test_bad_requests_get_one_line_errors_and_change_nothing(echo_vm):
    vm, server, thread, _ = echo_vm
    client = Client(server.path)
    for raw, error in ((b"{not json", "malformed"), (b"[1, 2]", "JSON object"), (b'{"cmd": "reboot"}', "unknown"),
                       (b'{"cmd": "snapshot", "path": 7}', "path"), (b'{"cmd": "snapshot", "full": "yes"}', "full"),
                       (b'{}', "unknown")):
        reply = client.send(raw)
        assert list(reply) == ["error"] and error in reply["error"]
    assert client.ask(cmd="stats")["state"] == "running" and thread.is_alive()
    client.socket.sendall(b"x" * (MAX_LINE + 10))
    assert "longer than" in json.loads(client.file.readline())["error"]
    assert client.file.readline() == b""                # and the server hung up
    client.close()


def test_a_client_that_leaves_mid_request_changes_nothing(echo_vm, tmp_path):
    vm, server, thread, _ = echo_vm
    half = socket.socket(socket.AF_UNIX)
    half.connect(server.path)
    half.sendall(b'{"cmd": "snapshot", "path": "' + str(tmp_path / "never").encode())
    half.close()
    quitter = socket.socket(socket.AF_UNIX)
    quitter.connect(server.path)
    quitter.sendall(b'{"cmd": "pause"')
    quitter.close()
    time.sleep(0.2)
    client = Client(server.path)
    assert client.ask(cmd="stats")["state"] == "running"
    assert not (tmp_path / "never").exists()
    client.close()


def test_quit_ends_the_vm(echo_vm):
    vm, server, thread, result = echo_vm
    client = Client(server.path)
    assert client.ask(cmd="quit") == {"ok": True}
    thread.join(WAIT)
    assert result["run"].exit_status == 0 and "control socket" in result["run"].detail
    client.close()


def test_socket_path_in_use_or_not_a_socket(tmp_path, echo_vm):
    vm, server, _, _ = echo_vm
    with pytest.raises(InputError, match="in use"):
        ControlServer(server.path, vm)
    (tmp_path / "file").write_text("mine")
    with pytest.raises(InputError, match="not a socket"):
        ControlServer(str(tmp_path / "file"), vm)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale"))
    stale.close()                                       # left behind, nobody listening
    ControlServer(str(tmp_path / "stale"), vm).close()
    assert not (tmp_path / "stale").exists()


def vmm(*args, stdin=subprocess.DEVNULL, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "vmm", *args], stdin=stdin, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


def test_vmm_run_with_control_then_vmm_restore(tmp_path, kernel_path):
    """The command line: `vmm run --control` answers, saves and quits (status 0, socket gone);
    `vmm restore` resumes the snapshot on the other engine."""
    control, snapshot = str(tmp_path / "ctl"), str(tmp_path / "snap")
    run = vmm("run", "--initrd", "echo", "--accel", "kvm" if not os.environ.get("VMM_NO_KVM") else "unicorn",
              "--control", control, "--snapshot-file", snapshot, stdin=subprocess.PIPE)
    deadline = time.monotonic() + WAIT
    while not os.path.exists(control):
        assert run.poll() is None and time.monotonic() < deadline, run.stderr.read()
        time.sleep(0.01)
    client = Client(control)
    assert client.ask(cmd="snapshot")["path"] == snapshot
    assert client.ask(cmd="quit") == {"ok": True}
    client.close()
    out, err = run.communicate(timeout=WAIT)
    assert run.returncode == 0 and not os.path.exists(control), err
    restore = vmm("restore", snapshot, "--accel", "unicorn", "--stats", stdin=subprocess.PIPE)
    out, err = restore.communicate(b"from the restore\n", timeout=WAIT)
    assert (restore.returncode, out) == (0, b"echo: from the restore\n"), err
    assert b"engine: unicorn" in err and b"exits:" in err, err
    memory = os.path.join(snapshot, "memory")
    os.truncate(memory, os.path.getsize(memory) // 2)       # a snapshot cut short: one line, status 65
    restore = vmm("restore", snapshot, "--accel", "unicorn", stdin=subprocess.PIPE)
    out, err = restore.communicate(b"", timeout=WAIT)
    lines = err.decode().strip().splitlines()
    assert (restore.returncode, out, len(lines)) == (65, b"", 1) and "truncated" in lines[0], err


@pytest.mark.parametrize("args,status,text", [
    (["restore", "/nonexistent/snapshot"], 66, "does not exist"),
    (["run", "--accel", "unicorn", "--snapshot-dirty"], 64, "dirty-page log"),
    (["run", "--snapshot-file", "snap-{x}"], 64, "{n}"),
])
def test_command_line_errors(args, status, text, kernel_path):
    proc = vmm(*args)
    out, err = proc.communicate(timeout=WAIT)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == status and len(lines) == 1 and text in lines[0], err


def test_vmm_restore_of_a_corrupt_snapshot(tmp_path, kernel_path):
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "manifest.json").write_text('{"format": "pyvmm-snapshot", "version": 1, "chec')
    proc = vmm("restore", str(tmp_path / "snap"))
    _, err = proc.communicate(timeout=WAIT)
    assert proc.returncode == 65 and b"corrupt or truncated" in err and b"Traceback" not in err
