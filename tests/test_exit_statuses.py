"""The README's exit-status table is exact: it is vmm/errors.py's, every status it lists is
produced here by a real `vmm` command, and the code has no status outside it."""
import ast
import importlib
import os
import pkgutil
import re
import signal
import subprocess
import sys

import pytest

import vmm
from elf_builder import elf64, pvh_note
from vmm import cli, errors, paths
from vmm.signals import Terminated

ENTRY = 0x100000
BOUND = 120                         # seconds: a hang fails the test; nothing here is timed


def readme_table() -> list:
    """[(status, meaning)] of the README's exit-status table, in order."""
    text = (paths.REPO_ROOT / "README.md").read_text()
    block = text.split("| status | meaning |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    return [tuple(cell.strip() for cell in line.strip("|").split("|", 1)) for line in block.splitlines()]


def listed() -> set:
    return {status for status, _ in errors.EXIT_STATUSES}


def test_the_readme_table_is_the_code_table():
    assert readme_table() == list(errors.EXIT_STATUSES)


def all_subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from all_subclasses(sub)


# Errors only vmm-oci raises: its own modules, and the container modules that read config.json's
# cgroup and seccomp sections (`vmm container run` takes neither).
OCI_MODULES = ("vmm.oci.", "vmm.container.cgroup_limits", "vmm.container.seccomp")


def test_every_error_class_has_a_listed_status():
    for module in pkgutil.walk_packages(vmm.__path__, "vmm."):
        if module.name != "vmm.__main__":
            importlib.import_module(module.name)
    from vmm.oci.errors import EXIT_STATUSES as OCI_STATUSES
    for cls in all_subclasses(errors.VmmError):
        if cls.__module__.startswith(OCI_MODULES):   # vmm-oci (`vmm oci`): runc's command line, its own table
            assert cls.exit_status in dict(OCI_STATUSES), (cls, cls.exit_status)
        elif issubclass(cls, Terminated):
            assert "128+N" in listed(), cls          # 128 + the signal's number, per instance
        else:
            assert str(cls.exit_status) in listed(), (cls, cls.exit_status)


def literal_returns(path) -> set:
    """Integer constants that `main`/`command_*`/`dispatch` functions in `path` return."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef) and re.match(r"main$|command_|dispatch$", node.name):
            for ret in ast.walk(node):
                if isinstance(ret, ast.Return) and isinstance(ret.value, ast.Constant) \
                        and isinstance(ret.value.value, int):
                    found.add(ret.value.value)
    return found


def test_the_commands_return_no_unlisted_literal_status():
    package = paths.REPO_ROOT / "vmm"
    for path in [package / "cli.py", *sorted((package / "bench").glob("*.py"))]:
        for status in literal_returns(path) - {0}:
            assert str(status) in listed() or 128 < status < 256, (path.name, status)


# --- every listed status, produced ----------------------------------------------------------------------

def vmm_run(*args, env=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "vmm", *args], capture_output=True, timeout=BOUND,
                          cwd=str(paths.REPO_ROOT), env=dict(os.environ, **(env or {})), **kwargs)


def kernel(tmp_path, code):
    path = tmp_path / "k.elf"
    path.write_bytes(elf64([(ENTRY, code, len(code))], notes=pvh_note(ENTRY)))
    return str(path)


def produce(status, tmp_path):
    """A real `vmm` command that must exit with `status` (a README row)."""
    if status == "1":
        return vmm_run("test", "--timeout", "0.05", "sleep")        # times out: FAIL
    if status == "64":
        return vmm_run("run", "--mem", "lots")
    if status == "65":
        junk = tmp_path / "junk"
        junk.write_bytes(b"not a kernel")
        return vmm_run("run", str(junk))
    if status == "66":
        return vmm_run("run", str(tmp_path / "missing.elf"))
    if status == "69":
        return vmm_run("run", "--accel", "kvm", env={"VMM_NO_KVM": "1"})
    if status == "71":
        return vmm_run("run", kernel(tmp_path, b"\x0f\x0b"))       # ud2 with no IDT: triple fault
    if status == "72":
        return vmm_run("run", "--initrd", "sleep", "--timeout", "0.2")
    if status == "74":
        with open("/dev/full", "wb") as full:
            return subprocess.run([sys.executable, "-m", "vmm", "run"], stdout=full, stderr=subprocess.PIPE,
                                  stdin=subprocess.DEVNULL, timeout=BOUND, cwd=str(paths.REPO_ROOT))
    raise AssertionError(f"no way to produce {status}")


@pytest.mark.parametrize("status", sorted(listed() - {"70", "128+N"}, key=int))
def test_each_listed_status_is_produced(status, tmp_path):
    proc = produce(status, tmp_path)
    assert proc.returncode == int(status), proc.stderr
    assert b"Traceback" not in proc.stderr


def test_an_internal_error_is_70_in_one_line(monkeypatch, capsys):
    """70 is a bug, so it is planted: the machine's constructor raises."""
    import vmm.machine

    def broken(self, *args, **kwargs):
        raise RuntimeError("planted for the test")
    monkeypatch.setattr(vmm.machine.Machine, "__init__", broken)
    assert cli.main(["run"]) == 70
    err = capsys.readouterr().err
    assert err == "vmm: internal error: RuntimeError: planted for the test (run with --debug for details)\n"


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2,
                                    signal.SIGALRM, signal.SIGTERM])
def test_signal_statuses_are_128_plus_n(signum, tmp_path):
    """The 128+N row, for each signal it names (test_reliability.py covers cleanup): a guest
    that prints one byte, then spins."""
    spin = kernel(tmp_path, b"\xba\xf8\x03\x00\x00\xb0\x78\xee\xeb\xfe")   # "x" to COM1; jmp $
    child = subprocess.Popen([sys.executable, "-m", "vmm", "run", spin], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(paths.REPO_ROOT))
    try:
        assert child.stdout.read(1)                 # the guest runs (its first output byte)
        child.send_signal(signum)
        _, err = child.communicate(timeout=BOUND)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 128 + signum, err
    assert str(128 + signum) in dict(errors.EXIT_STATUSES)["128+N"] or signum == signal.SIGINT
