"""The `vmm` command's exit statuses, for every class of error and every way a guest ends.

Tiny synthetic PVH kernels (a few bytes of 32-bit code) make each case exact and quick.
"""
import os
import subprocess
import sys

import pytest

from conftest import engine_params
from elf_builder import elf64, pvh_note
from vmm.errors import (AcceleratorUnavailable, GuestCrashed, GuestTimeout, ImageError, InputError,
                        UsageError)

ENTRY = 0x100000


def kernel_file(tmp_path, code: bytes, name="k.elf"):
    path = tmp_path / name
    path.write_bytes(elf64([(ENTRY, code, len(code))], notes=pvh_note(ENTRY)))
    return str(path)


def vmm(*args, env=None, stdin=b""):
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "vmm", *args], input=stdin, capture_output=True,
                          timeout=120, env=full_env)


def assert_one_line_error(proc, status):
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmm: error:"), proc.stderr
    assert b"Traceback" not in proc.stderr


OUT_42 = b"\xb8\x2a\x00\x00\x00\xe7\xf4"           # mov eax, 42; out 0xf4, eax
HLT = b"\xf4"                                      # hlt with IF=0: power off
UD2 = b"\x0f\x0b"                                  # #UD with no IDT: triple fault
SPIN = b"\xeb\xfe"                                 # jmp $
HELLO_OUT = (b"\xba\xf8\x03\x00\x00"               # mov edx, 0x3f8
             b"\xb0\x68\xee\xb0\x69\xee\xb0\x0a\xee"   # "hi\n" to the UART
             b"\x31\xc0\xe7\xf4")                  # xor eax, eax; out 0xf4, eax


def test_help_and_no_command():
    assert vmm("--help").returncode == 0
    assert b"exit status" in vmm("run", "--help").stdout
    assert vmm().returncode == UsageError.exit_status


@pytest.mark.parametrize("args", [["run", "--bogus"], ["run", "--mem", "1M"], ["run", "--mem", "64G"],
                                  ["run", "--mem", "lots"], ["run", "--accel", "hvf"],
                                  ["run", "--timeout", "-1"], ["test", "-j", "0", "hello"]])
def test_bad_arguments(args, tmp_path):
    assert_one_line_error(vmm(*args, kernel_file(tmp_path, HLT)) if args[0] == "run" else vmm(*args),
                          UsageError.exit_status)


def test_missing_and_unreadable_inputs(tmp_path):
    assert_one_line_error(vmm("run", str(tmp_path / "nope.elf")), InputError.exit_status)
    assert_one_line_error(vmm("run", str(tmp_path)), InputError.exit_status)
    assert_one_line_error(vmm("run", kernel_file(tmp_path, HLT), "--initrd", str(tmp_path / "none")),
                          InputError.exit_status)


def test_malformed_images(tmp_path):
    junk = tmp_path / "junk"
    junk.write_bytes(b"not a kernel at all")
    assert_one_line_error(vmm("run", str(junk)), ImageError.exit_status)
    no_note = tmp_path / "nonote.elf"
    no_note.write_bytes(elf64([(ENTRY, HLT, 1)]))
    assert_one_line_error(vmm("run", str(no_note)), ImageError.exit_status)
    assert_one_line_error(vmm("run", kernel_file(tmp_path, HLT), "--initrd", str(junk)), ImageError.exit_status)


def test_kvm_unavailable(tmp_path):
    proc = vmm("run", "--accel", "kvm", kernel_file(tmp_path, HLT), env={"VMM_NO_KVM": "1"})
    assert_one_line_error(proc, AcceleratorUnavailable.exit_status)


@pytest.mark.parametrize("engine", engine_params())
def test_guest_endings(engine, tmp_path):
    run = lambda code, *extra: vmm("run", "--accel", engine, kernel_file(tmp_path, code), *extra)
    assert run(OUT_42).returncode == 42
    assert run(HLT).returncode == 0
    crashed = run(UD2)
    assert crashed.returncode == GuestCrashed.exit_status
    assert b"guest crashed" in crashed.stderr and b"Traceback" not in crashed.stderr
    timed_out = run(SPIN, "--timeout", "1")
    assert timed_out.returncode == GuestTimeout.exit_status
    assert b"rip=" in timed_out.stderr
    hello = run(HELLO_OUT, "--stats")
    assert (hello.returncode, hello.stdout) == (0, b"hi\n")
    assert b"first serial byte" in hello.stderr and b"exits:" in hello.stderr


def firmware_file(tmp_path, reset_code: bytes, size=64 * 1024):
    """A firmware image whose reset vector (its last 16 bytes) holds `reset_code`."""
    image = bytearray(b"\xf4" * size)
    image[size - 16:size - 16 + len(reset_code)] = reset_code
    path = tmp_path / "fw.bin"
    path.write_bytes(bytes(image))
    return str(path)


def test_firmware_errors(tmp_path):
    assert_one_line_error(vmm("run", "--bios", str(tmp_path / "missing.bin")), InputError.exit_status)
    odd = tmp_path / "odd.bin"
    odd.write_bytes(bytes(1000))
    assert_one_line_error(vmm("run", "--bios", str(odd)), ImageError.exit_status)
    assert_one_line_error(vmm("run", "--bios", firmware_file(tmp_path, SPIN, size=512 * 1024)),
                          ImageError.exit_status)
    assert vmm("run", "--firmware", "--bios", str(odd)).returncode == UsageError.exit_status


@pytest.mark.parametrize("engine", engine_params())
def test_firmware_that_loops_reports_where_it_stopped(engine, tmp_path, kernel_path):
    proc = vmm("run", "--accel", engine, "--bios", firmware_file(tmp_path, SPIN), "--timeout", "1")
    assert proc.returncode == GuestTimeout.exit_status, proc.stderr
    assert b"mode: real" in proc.stderr and b"cr0=" in proc.stderr and b"rip=0x" in proc.stderr


@pytest.mark.parametrize("device,reason", [("/nonexistent/kvm", b"does not exist"),
                                           ("/dev/null", b"KVM_GET_API_VERSION")])
def test_auto_falls_back_to_unicorn_when_kvm_cannot_be_opened(device, reason, tmp_path):
    """Not VMM_NO_KVM: the real open (or first ioctl) of the device fails."""
    env = {"VMM_KVM_DEVICE": device, "VMM_ACCEL": "auto", "VMM_NO_KVM": ""}
    proc = vmm("run", "--stats", kernel_file(tmp_path, HELLO_OUT), env=env)
    assert (proc.returncode, proc.stdout) == (0, b"hi\n"), proc.stderr
    assert b"engine: unicorn (auto: fell back to unicorn" in proc.stderr and reason in proc.stderr
    forced = vmm("run", "--accel", "kvm", kernel_file(tmp_path, HELLO_OUT), env=env)
    assert_one_line_error(forced, AcceleratorUnavailable.exit_status)
