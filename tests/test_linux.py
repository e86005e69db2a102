"""Debian's stock kernel (linux-image-cloud-amd64) with a busybox initramfs: the oracle first
(QEMU microvm with ACPI runs the same kernel, initramfs and scripts), then bad input."""
import os
import subprocess
import sys

import pytest

import linux_guest as lg

DEVICES_OUTPUT = [
    "vmmtest: devices",
    "vda: block device",
    lg.DISK_TEXT.decode().strip(),
    "hwrng: 64 bytes",
    "hvc0: character device",
    "virtio interrupts through the IO-APIC: 3",
    "virtio devices: 3",
    "vmmtest: done",
]


@pytest.fixture(scope="module")
def linux():
    lg.require_build()


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    return lg.make_ext4(tmp_path_factory.mktemp("linux-disk"))


def test_qemu_microvm_runs_the_device_script(linux, disk, qemu):
    """The oracle: with -M microvm,acpi=on, Debian's virtio_mmio finds QEMU's devices through
    ACPI, and the script's output is what our VMM must print too."""
    assert lg.script_output(lg.run_qemu(qemu, "devices", disk)) == DEVICES_OUTPUT


def vmm(*args):
    return subprocess.run([sys.executable, "-m", "vmm", "run", *args], capture_output=True, timeout=120,
                          env=dict(os.environ), stdin=subprocess.DEVNULL)


def assert_one_line(proc, status, text):
    assert proc.returncode == status, proc.stderr
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and text in lines[0] and b"Traceback" not in proc.stderr, proc.stderr


def test_truncated_bzimage(linux, tmp_path):
    cut = tmp_path / "vmlinuz"
    cut.write_bytes(lg.KERNEL.read_bytes()[:1 << 20])
    assert_one_line(vmm(str(cut), "--accel", "unicorn"), 65, "truncated")


def test_kernel_that_needs_more_memory_than_mem(linux):
    assert_one_line(vmm(str(lg.KERNEL), "--mem", "64M", "--accel", "unicorn"), 65, "MiB of RAM to decompress")


def test_initrd_larger_than_ram_allows(linux, tmp_path):
    big = tmp_path / "big.cpio"
    with open(big, "wb") as f:
        f.truncate(100 << 20)
    assert_one_line(vmm(str(lg.KERNEL), "--initrd", str(big), "--mem", "128M", "--accel", "unicorn"),
                    65, "does not fit")


def test_firmware_boot_is_for_pvh_kernels(linux):
    assert_one_line(vmm(str(lg.KERNEL), "--firmware", "--accel", "unicorn"), 64, "PVH kernels only")
