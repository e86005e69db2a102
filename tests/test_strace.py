"""`vmm run --strace`: the guest kernel reports each system call through a port, the VMM prints
it as strace does. Checked against the real strace on the same binary as a host process, and
for errors, signals and the end of the program; without --strace the kernel sends nothing."""
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import engine_params
from elf_builder import elf64
from vmm import Machine, MachineConfig, paths

ROOTFS = paths.GUEST_BUILD / "rootfs"


def traced(engine, kernel_path, tmp_path, argv, strace=True, root=ROOTFS):
    out = tmp_path / "strace.txt"
    config = MachineConfig(kernel=kernel_path, accel=engine, rootfs=str(root), program_args=argv, timeout=60,
                           strace=str(out) if strace else None)
    with Machine(config) as vm:
        result = vm.run()
    return result, (out.read_text().splitlines() if strace else [])


def host_strace(argv, tmp_path, root=ROOTFS, check=True):
    """strace's own lines for argv run chrooted in the root file system, from its execve on,
    with the pid and the padding before " = " taken out. Its stdout is a character device
    (/dev/null), as the VM's console is, so glibc asks the same questions of it."""
    if shutil.which("strace") is None:
        pytest.skip("strace is not installed (`make test` installs it)")
    out = tmp_path / "host.txt"
    subprocess.run(["strace", "-f", "-o", str(out), shutil.which("chroot"), str(root), *argv],
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=check, env={"PATH": "/bin:/usr/bin"})
    lines = [re.sub(r"^\d+\s+", "", line) for line in out.read_text().splitlines()]
    last_exec = max(i for i, line in enumerate(lines) if line.startswith("execve("))
    return [re.sub(r"\)\s+= ", ") = ", line) for line in lines[last_exec + 1:]]


def names(lines):
    return [line.split("(")[0] for line in lines if "(" in line and not line.startswith(("---", "+++"))]


@pytest.mark.parametrize("engine", engine_params())
def test_the_same_calls_as_strace_on_the_host(engine, kernel_path, tmp_path):
    argv = ["/bin/wc", "/data/lorem.txt"]
    result, vm = traced(engine, kernel_path, tmp_path, argv)
    host = host_strace(argv, tmp_path)
    assert result.exit_status == 0
    assert names(vm) == names(host)                 # glibc's start-up, busybox's work, call by call
    for line in ('openat(AT_FDCWD, "/data/lorem.txt", O_RDONLY) = 3',
                 'newfstatat(3, "", {st_mode=S_IFREG|0644, st_size=446, ...}, AT_EMPTY_PATH) = 0',
                 'read(3, "Lorem ipsum dolor sit amet, cons"..., 4096) = 446', 'read(3, "", 4096) = 0',
                 'close(3) = 0', 'write(1, "        6        69       446 /d"..., 46) = 46',
                 "exit_group(0) = ?", "+++ exited with 0 +++",
                 "prlimit64(0, RLIMIT_STACK, NULL, {rlim_cur=8192*1024, rlim_max=RLIM64_INFINITY}) = 0",
                 "mprotect(0x5db000, 28672, PROT_READ) = 0"):
        assert line in vm and in_host(line, host), (line, vm, host)


def in_host(line, host):
    """line is among the host's, but for a read's buffer size: the host's stdio sizes it by its
    file system's block size (4096 on ext4; 8192 over the 9p root of `make test-nested`), the VM's
    by ours (4096)."""
    if not line.startswith("read("):
        return line in host
    pattern = re.escape(line).replace(r"4096\)", r"\d+\)")
    return any(re.fullmatch(pattern, candidate) for candidate in host)


@pytest.mark.parametrize("engine", engine_params())
def test_errors_signals_and_the_end(engine, kernel_path, tmp_path):
    result, lines = traced(engine, kernel_path, tmp_path, ["cat", "/nonexistent"])
    assert result.exit_status == 1
    assert 'openat(AT_FDCWD, "/nonexistent", O_RDONLY) = -1 ENOENT (No such file or directory)' in lines
    assert lines[-2:] == ["exit_group(1) = ?", "+++ exited with 1 +++"]
    result, lines = traced(engine, kernel_path, tmp_path, ["/bin/memory-musl"])
    assert result.exit_status == 0
    segv = [line for line in lines if line.startswith("--- SIGSEGV")]
    assert any(re.fullmatch(r"--- SIGSEGV \{si_signo=SIGSEGV, si_code=SEGV_ACCERR, si_addr=0x[0-9a-f]+\} ---", line)
               for line in segv), segv
    assert re.search(r"^--- SIGBUS \{si_signo=SIGBUS, si_code=BUS_ADRERR, si_addr=0x[0-9a-f]+\} ---$", "\n".join(lines),
                     re.M)
    assert any(re.fullmatch(r"mprotect\(0x[0-9a-f]+, 4096, PROT_READ\) = 0", line) for line in lines)
    assert any(re.fullmatch(r"mmap\(NULL, 8192, PROT_READ\|PROT_WRITE, MAP_PRIVATE, 3, 0\) = 0x7ffff[0-9a-f]+", line)
               for line in lines), lines
    assert "rt_sigreturn() = 0" in lines or any(line.startswith("rt_sigreturn(") for line in lines)


# A static program that writes to address 8: mov dword [8], 0 (C7 04 25 disp32 imm32), its one
# segment at the same offset in its page as in the file (64 + 56 bytes of headers), as Linux wants.
CRASH = elf64([(0x400078, bytes.fromhex("c70425080000000000000000"), 12)], entry=0x400078)


@pytest.mark.parametrize("engine", engine_params())
def test_a_fatal_fault_as_strace_shows_it(engine, kernel_path, tmp_path):
    """The signal's line, then the death, as the host's strace prints them for the same binary."""
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "crash").write_bytes(CRASH)
    (root / "bin" / "crash").chmod(0o755)
    result, lines = traced(engine, kernel_path, tmp_path, ["/bin/crash"], root=root)
    host = host_strace(["/bin/crash"], tmp_path, root=root, check=False)
    expected = ["--- SIGSEGV {si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x8} ---", "+++ killed by SIGSEGV +++"]
    assert host[-2:] == expected, host
    assert result.exit_status == 128 + 11 and lines[-2:] == expected, lines


@pytest.mark.parametrize("engine", engine_params())
def test_modes_and_a_signal_sent_as_strace_shows_them(engine, kernel_path, tmp_path):
    """Modes in C's octal (0666, 027, 000), and a signal sent by kill(2) with its sender: the
    same lines as the host's strace (the sender's pid aside). (The shell only uses builtins: no
    fork yet, issue 15; and the VM's program is PID 1, which a default-action kill leaves alone.)"""
    root = tmp_path / "root"
    for folder in ("bin", "tmp"):
        (root / folder).mkdir(parents=True)
    shutil.copy(ROOTFS / "bin" / "busybox", root / "bin" / "busybox")
    (root / "bin" / "sh").symlink_to("busybox")
    (root / "script").write_text("umask 027; echo x > /tmp/f; trap 'exit 3' USR1; kill -USR1 $$\n")  # builtins
    argv = ["/bin/sh", "/script"]
    host = host_strace(argv, tmp_path, root=root, check=False)
    (root / "tmp" / "f").unlink()
    result, vm = traced(engine, kernel_path, tmp_path, argv, root=root)

    def shown(lines):
        wanted = ("umask(", 'openat(AT_FDCWD, "/tmp/f"', "--- SIGUSR1", "+++")
        return [re.sub(r"si_pid=\d+", "si_pid=N", line) for line in lines if line.startswith(wanted)]
    assert 'openat(AT_FDCWD, "/tmp/f", O_WRONLY|O_CREAT|O_TRUNC, 0666) = 3' in "\n".join(host), host
    assert "umask(027) = 022" in host and "umask(000) = 022" in host, host
    assert shown(vm) == shown(host), (vm, host)
    assert result.exit_status == 3 and shown(vm)[-1] == "+++ exited with 3 +++"


@pytest.mark.parametrize("engine", engine_params())
def test_futex_operations_as_strace_shows_them(engine, kernel_path, tmp_path):
    """Each futex operation with the arguments it uses, as the host's strace prints the same
    program's calls (addresses and absolute times masked: they differ between the runs)."""
    argv = ["/bin/futex-glibc"]
    result, vm = traced(engine, kernel_path, tmp_path, argv)
    host = host_strace(argv, tmp_path)

    def futex_lines(lines):
        masked = (re.sub(r"\{tv_sec=\d+, tv_nsec=\d+\}", "{...}", re.sub(r"0x[0-9a-f]+", "ADDR", line))
                  for line in lines if line.startswith("futex("))
        return [line for line in masked if not line.endswith("<unfinished ...>")]
    assert result.exit_status == 0
    assert futex_lines(vm) == futex_lines(host) and len(futex_lines(vm)) > 30
    assert "futex(ADDR, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 7, {...}, FUTEX_BITSET_MATCH_ANY) = " \
        "-1 ETIMEDOUT (Connection timed out)" in futex_lines(vm)


@pytest.mark.parametrize("engine", engine_params())
def test_without_strace_the_kernel_sends_nothing(engine, kernel_path, tmp_path):
    """No report reaches the (unclaimed) port: the calls took the fast path."""
    result, _ = traced(engine, kernel_path, tmp_path, ["/bin/files-musl"], strace=False)
    assert result.exit_status == 0 and result.stats["unclaimed"]["port_writes"] == 0


def test_the_command_line_writes_to_stderr_or_a_file(kernel_path, tmp_path):
    command = [sys.executable, "-m", "vmm", "run", "--accel", "auto", "--rootfs", str(ROOTFS)]
    proc = subprocess.run(command + ["--strace", "--", "true"], capture_output=True, timeout=120)
    assert proc.returncode == 0 and proc.stderr.decode().endswith("exit_group(0) = ?\n+++ exited with 0 +++\n")
    proc = subprocess.run(command + ["--strace", str(tmp_path / "t"), "--", "false"], capture_output=True, timeout=120)
    assert proc.returncode == 1 and proc.stderr == b""
    assert (tmp_path / "t").read_text().endswith("+++ exited with 1 +++\n")
