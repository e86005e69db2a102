"""Booting a root file system (`vmm run --rootfs DIR`, `--initrd FILE.cpio[.gz]`), beyond what
the .expect programs check: writes stay in the guest, an archive from another tool (data not
page-aligned: the kernel copies it) boots the same, the default program is /init then /bin/sh,
and a program the kernel cannot run is reported in one line."""
import gzip
import os
import shutil
import subprocess
import time

import pytest

from conftest import engine_params
from vmm import Machine, MachineConfig, paths
from vmm.errors import InputError

ROOTFS = paths.GUEST_BUILD / "rootfs"


def boot(engine, kernel_path, program_args=(), stdin=None, **source):
    config = MachineConfig(kernel=kernel_path, accel=engine, program_args=list(program_args), stdin=stdin,
                           timeout=60, **source)
    with Machine(config) as vm:
        return vm.run()


@pytest.fixture
def small_root(tmp_path):
    """A root with busybox and one program, copied from the test root file system."""
    if not ROOTFS.is_dir():
        pytest.fail(f"{ROOTFS} not built: `make test` builds it")
    root = tmp_path / "root"
    (root / "bin").mkdir(parents=True)
    (root / "tmp").mkdir()
    shutil.copy(ROOTFS / "bin" / "busybox", root / "bin" / "busybox")
    for applet in ("sh", "cp", "mkdir", "ls", "cat"):
        (root / "bin" / applet).symlink_to("busybox")
    shutil.copy(ROOTFS / "bin" / "signals-musl", root / "bin" / "signals-musl")
    (root / "etc").mkdir()
    (root / "etc" / "motd").write_text("written on the host\n")
    return root


@pytest.mark.parametrize("engine", engine_params())
def test_writes_stay_in_guest_memory(engine, kernel_path, small_root):
    before = sorted(p.name for p in small_root.rglob("*"))
    result = boot(engine, kernel_path, ["cp", "/etc/motd", "/tmp/copy"], rootfs=str(small_root))
    assert result.exit_status == 0, result.serial
    result = boot(engine, kernel_path, ["cat", "/tmp/copy"], rootfs=str(small_root))
    assert result.exit_status == 1 and b"No such file" in result.serial     # a new VM: a fresh copy
    assert sorted(p.name for p in small_root.rglob("*")) == before


@pytest.mark.parametrize("engine", engine_params())
def test_an_archive_written_by_another_tool(engine, kernel_path, tmp_path):
    """busybox cpio's archive (4-byte alignment), gzip-compressed: the VMM repacks it, and a
    QEMU-style loader would hand it over as it is (tests/test_guest_programs runs that)."""
    listing = subprocess.run(["find", "."], cwd=ROOTFS, capture_output=True, check=True).stdout
    archive = subprocess.run([str(ROOTFS / "bin" / "busybox"), "cpio", "-o", "-H", "newc"], cwd=ROOTFS,
                             input=listing, capture_output=True, check=True).stdout
    (tmp_path / "root.cpio.gz").write_bytes(gzip.compress(archive))
    result = boot(engine, kernel_path, ["sha256sum", "/data/lorem.txt"], initrd=str(tmp_path / "root.cpio.gz"))
    expected = subprocess.run(["sha256sum", str(ROOTFS / "data" / "lorem.txt")], capture_output=True,
                              check=True).stdout.split()[0]
    assert result.exit_status == 0 and result.serial == expected + b"  /data/lorem.txt\n"


@pytest.mark.parametrize("engine", engine_params())
def test_default_program_is_init_then_sh(engine, kernel_path, small_root):
    result = boot(engine, kernel_path, stdin=b"echo hello from sh\nexit 7\n", rootfs=str(small_root))
    assert result.exit_status == 7 and b"hello from sh\n" in result.serial, result.serial
    shutil.copy(small_root / "bin" / "signals-musl", small_root / "init")
    result = boot(engine, kernel_path, rootfs=str(small_root))
    assert result.exit_status == 0 and result.serial.endswith(b"signals: all ok\n")


@pytest.mark.parametrize("engine", engine_params())
def test_the_wall_clock_is_the_rtc(engine, kernel_path, small_root):
    """time() and a new file's mtime are the host's time (the VMM's CMOS RTC, read by the
    kernel at its first use), not time since boot; what the kernel made at boot (/sys) keeps
    its. (The shell cannot fork or exec yet, issue 15: the file's time is judged with the `test`
    builtin against two files the archive brings, dated before the run and an hour after.)"""
    before = int(time.time())
    for name, stamp in (("before", before - 1), ("later", before + 3600)):
        (small_root / name).write_text(name)
        os.utime(small_root / name, (stamp, stamp))
    now = boot(engine, kernel_path, ["/bin/busybox", "date", "+%s"], rootfs=str(small_root))
    script = (b"echo > /tmp/new; [ /tmp/new -nt /before ] && [ /later -nt /tmp/new ] && echo file-now; "
              b"[ /sys -ot /before ] && echo sys-since-boot; exit 0\n")
    files = boot(engine, kernel_path, stdin=script, rootfs=str(small_root))
    after = int(time.time())
    assert now.exit_status == 0 and before <= int(now.serial) <= after, (before, now.serial, after)
    assert files.exit_status == 0 and files.serial.split()[-2:] == [b"file-now", b"sys-since-boot"], files.serial


@pytest.mark.parametrize("engine", engine_params())
def test_a_program_the_kernel_cannot_run(engine, kernel_path, small_root):
    shutil.copy("/bin/true", small_root / "bin" / "dynamic")        # Debian's: dynamically linked
    (small_root / "bin" / "script").write_text("not an ELF\n")
    (small_root / "bin" / "script").chmod(0o755)
    result = boot(engine, kernel_path, ["dynamic"], rootfs=str(small_root))
    assert result.exit_status == 125
    assert result.serial == (b"panic: cannot run /bin/dynamic: dynamically linked: only static programs run "
                             b"here (no ELF interpreter)\n")
    result = boot(engine, kernel_path, ["/bin/script"], rootfs=str(small_root))
    assert result.exit_status == 125 and b"Exec format error" in result.serial


def test_a_missing_program_is_refused_before_booting(kernel_path, small_root):
    with pytest.raises(InputError, match="program nosuch not found in the root file system .*/bin:/usr/bin"):
        boot("auto", kernel_path, ["nosuch"], rootfs=str(small_root))
    shutil.rmtree(small_root / "bin")
    with pytest.raises(InputError, match="neither /init nor /bin/sh"):
        boot("auto", kernel_path, rootfs=str(small_root))
