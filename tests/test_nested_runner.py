"""The nested-KVM test runner (tests/nested/nested_kvm.py) on the host: how it finds the
kernel modules, packs the initramfs, passes the command, reads the results, and how it
fails: one line and its own status for a broken environment, a timeout for a hung guest."""
import base64
import importlib.util
import os
import shutil
import struct
import subprocess
import sys

import pytest

from vmm import paths

RUNNER_PATH = paths.REPO_ROOT / "tests" / "nested" / "nested_kvm.py"
_spec = importlib.util.spec_from_file_location("nested_kvm", RUNNER_PATH)
nested = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(nested)


def kernel_module(modinfo: dict) -> bytes:
    """A minimal ELF64 relocatable with a .modinfo section (what the runner reads of a .ko)."""
    info = b"".join(f"{key}={value}".encode() + b"\0" for key, value in modinfo.items())
    names = b"\0.modinfo\0.shstrtab\0"
    header_size, section_size = 64, 64
    data = info + names
    shoff = header_size + len(data)
    header = (b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
              + struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, header_size, 0, 0, section_size, 3, 2))
    sections = [bytes(section_size),
                struct.pack("<IIQQQQIIQQ", 1, 1, 0, 0, header_size, len(info), 0, 0, 1, 0),
                struct.pack("<IIQQQQIIQQ", 10, 3, 0, 0, header_size + len(info), len(names), 0, 0, 1, 0)]
    return header + data + b"".join(sections)


def test_modinfo_is_read_from_the_elf_section():
    assert nested.modinfo(kernel_module({"name": "kvm_amd", "depends": "kvm,ccp"})) == {
        "name": "kvm_amd", "depends": "kvm,ccp"}
    with pytest.raises(nested.Unavailable, match="not a 64-bit little-endian ELF"):
        nested.modinfo(b"not an elf")


def test_modules_come_after_their_dependencies(tmp_path):
    tree = {"kvm-amd": "kvm,ccp", "kvm": "irqbypass", "ccp": "", "irqbypass": "", "9p": "9pnet,netfs",
            "9pnet": "", "netfs": "", "unrelated": ""}
    for name, depends in tree.items():
        (tmp_path / f"{name}.ko").write_bytes(kernel_module({"depends": depends}))
    order = [name for name, _ in nested.module_order(nested.index_modules(tmp_path), ("9p", "kvm_amd"))]
    assert order == ["9pnet", "netfs", "9p", "irqbypass", "kvm", "ccp", "kvm_amd"]
    (tmp_path / "ccp.ko").unlink()
    with pytest.raises(nested.Unavailable, match=r"module ccp \(needed by kvm_amd\) is not in the kernel package"):
        nested.module_order(nested.index_modules(tmp_path), ("kvm_amd",))


def test_initramfs_is_a_newc_archive(tmp_path):
    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox not installed (its cpio lists the archive)")
    archive = nested.cpio_newc([("bin", 0o040755, b""), ("bin/tool", 0o100755, b"#!/bin/sh\n"),
                                ("bin/sh", 0o120777, b"busybox")])
    listing = subprocess.run([busybox, "cpio", "-t"], input=archive, capture_output=True, check=True).stdout
    assert listing.split() == [b"bin", b"bin/tool", b"bin/sh"]
    assert len(archive) % 4 == 0


def test_static_busybox_is_told_from_a_dynamic_program():
    assert not nested.is_static_elf(paths.REPO_ROOT / "README.md")
    dynamic = shutil.which("ls")
    assert dynamic and not nested.is_static_elf(__import__("pathlib").Path(dynamic))
    program = paths.PROGRAMS_BUILD / "hello"                     # our guest programs are static
    if program.exists():
        assert nested.is_static_elf(program)


def test_the_command_travels_base64_on_the_kernel_command_line():
    line = nested.kernel_command_line("pytest -k 'a b'", timeout=600)
    words = dict(word.split("=", 1) for word in line.split() if word.startswith("nested."))
    assert words["nested.limit"] == "660"
    assert base64.b64decode(words["nested.cmd"]).decode() == "pytest -k 'a b'"
    assert base64.b64decode(words["nested.dir"]).decode() == str(nested.CHECKOUT)
    with pytest.raises(ValueError, match="too long"):
        nested.kernel_command_line("x" * 2000)


def test_pytest_summary_line_is_found():
    output = "....F\n=== FAILURES ===\nboom\n=========== 1 failed, 4 passed, 2 skipped in 40.12s ===========\n"
    assert nested.summary_line(output) == "1 failed, 4 passed, 2 skipped in 40.12s"
    assert nested.summary_line("12 passed, 700 deselected in 3.0s\n") == "12 passed, 700 deselected in 3.0s"
    assert nested.summary_line("Traceback (most recent call last):\n") is None


def test_the_selection_writes_nothing_into_the_checkout():
    command = nested.pytest_command(["-k", "gdb"])
    assert "-m kvm" in command and "-p no:cacheprovider" in command and "--junitxml=/run/nested/" in command
    assert command.endswith("-k gdb")


@pytest.fixture
def fake_guest(tmp_path, monkeypatch):
    """The runner with its build folder in tmp_path and `sh -c SCRIPT` standing in for QEMU."""
    for name, value in (("BUILD", tmp_path), ("RESULTS", tmp_path / "results"),
                        ("CONSOLE_LOG", tmp_path / "console.log"), ("QEMU_LOG", tmp_path / "qemu.log")):
        monkeypatch.setattr(nested, name, value)
    monkeypatch.setattr(nested.shutil, "which", lambda name: "/bin/sh")

    def guest(script):
        monkeypatch.setattr(nested, "qemu_command", lambda qemu, command, cpus, timeout: ["/bin/sh", "-c", script])
    return guest


def test_a_broken_environment_is_one_line_and_status_69(fake_guest, monkeypatch, capsys):
    fake_guest("echo booting; echo 'NESTED-ERROR: module kvm_amd failed to load: Operation not supported'")
    monkeypatch.setattr(nested, "build_image", lambda: None)
    assert nested.main(["run", "true"]) == nested.EXIT_UNAVAILABLE
    assert capsys.readouterr().err == "nested: module kvm_amd failed to load: Operation not supported\n"


def test_qemu_missing_is_reported(fake_guest, monkeypatch, capsys):
    monkeypatch.setattr(nested.shutil, "which", lambda name: None)
    monkeypatch.setattr(nested, "build_image", lambda: None)
    assert nested.main(["pytest"]) == nested.EXIT_UNAVAILABLE
    assert capsys.readouterr().err.startswith("nested: qemu-system-x86_64 is not installed")


def test_a_guest_without_a_result_fails(fake_guest, capsys):
    fake_guest("echo 'qemu: could not load kernel' >&2; exit 1")
    with pytest.raises(nested.Unavailable, match=r"stopped without a result \(QEMU exit status 1: qemu: could not"):
        nested.boot("true", timeout=30, cpus=1)


def test_a_hung_guest_is_stopped_at_the_timeout(fake_guest, capsys):
    fake_guest("echo started; sleep 60")
    assert nested.boot("true", timeout=0.5, cpus=1) == nested.EXIT_TIMEOUT
    assert "did not finish within 0 s" in capsys.readouterr().err


def test_the_commands_status_comes_back(fake_guest, capsys):
    fake_guest(f"echo 'nested: running in x: y'; echo out; echo 3 > {nested.RESULTS}/status")
    assert nested.boot("true", timeout=30, cpus=1, quiet=True) == 3
    assert capsys.readouterr().out == "out\n"                   # quiet: the command's lines only


def test_bad_arguments_are_status_64(capsys):
    assert nested.main(["run"]) == nested.EXIT_USAGE
    assert nested.main(["image", "extra"]) == nested.EXIT_USAGE
    assert nested.main(["--timeout", "x", "pytest"]) == nested.EXIT_USAGE


def test_a_cpu_without_svm_is_reported(tmp_path, monkeypatch, capsys):
    """A real boot of the nested guest on QEMU's qemu64 CPU with SVM taken out: /init says so
    and the run fails with that line (about 10 s)."""
    if not os.environ.get("NESTED_BOOT_TESTS"):
        pytest.skip("boots QEMU for 10-20 s: `make test-nested` runs it (NESTED_BOOT_TESTS=1)")
    if not (nested.KERNEL_DIR / "vmlinuz").exists() or shutil.which(nested.QEMU) is None:
        pytest.fail("the nested image is not built (make nested-image) or QEMU is missing (make peers)")
    for name, value in (("RESULTS", tmp_path / "results"), ("CONSOLE_LOG", tmp_path / "console.log"),
                        ("QEMU_LOG", tmp_path / "qemu.log"), ("INITRAMFS", tmp_path / "initramfs.cpio"),
                        ("CPU_MODEL", "qemu64,-svm")):
        monkeypatch.setattr(nested, name, value)
    nested.build_initramfs()
    with pytest.raises(nested.Unavailable, match="the guest CPU has no SVM"):
        nested.boot("true", timeout=300, cpus=1, quiet=True)


def test_bench_nested_is_for_the_exits_benchmark():
    proc = subprocess.run([sys.executable, "-m", "vmm", "bench", "startup", "--nested"], capture_output=True,
                          timeout=60, cwd=paths.REPO_ROOT)
    assert proc.returncode == 64 and proc.stderr.decode().strip() == "vmm: error: --nested is for `bench exits`"
