"""Debian's stock kernel (linux-image-cloud-amd64) with a busybox initramfs: QEMU microvm with
ACPI runs the same kernel, initramfs, disk and script as the oracle; our VMM boots it on every
engine that can run a Linux ring 0 (on this machine's PVM KVM the KVM runs skip, saying why),
to the same script output, and to an interactive shell; then bad input. Each boot costs tens
of seconds on the software engine, so there are few."""
import os
import subprocess
import sys

import pytest

import linux_guest as lg
from conftest import engine_params
from vmm import Machine, MachineConfig
from vmm.outcome import SYSTEM_EVENT

DEVICES_OUTPUT = [
    "vmmtest: devices",
    "vda: block device",
    lg.DISK_TEXT.decode().strip(),
    "hwrng: 64 bytes",
    "hvc0: character device",
    "vmmtest: through hvc0",
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


def linux_engine(engine):
    reason = lg.linux_skip_reason(engine)
    if reason:
        pytest.skip(reason)
    return engine


@pytest.mark.parametrize("engine", engine_params())
def test_linux_finds_every_device_through_acpi_as_under_qemu(linux, disk, engine):
    """Debian's virtio_mmio binds our slots from the DSDT; the disk mounts, the entropy
    device and the console work, and the interrupts go through the IOAPIC; then poweroff -f
    powers the VM off through ACPI."""
    result, console = lg.boot_vmm(linux_engine(engine), "devices", disk)
    assert lg.script_output(console) == DEVICES_OUTPUT, console.decode(errors="replace")[-3000:]
    assert result.reason == SYSTEM_EVENT and "powered off" in result.detail and result.exit_status == 0


@pytest.mark.parametrize("engine", engine_params())
def test_interactive_busybox_shell_on_the_serial_console(linux, engine):
    """No script: /init starts a shell on ttyS0; what we type reaches it, and `reboot -f`
    ends the VM with status 0 (the device test powers off). Linux restarts a hardware-reduced
    ACPI machine through EFI, then through the BIOS reset vector in real mode, where the
    loader left a reset stub."""
    config = MachineConfig(kernel=str(lg.KERNEL), initrd=str(lg.INITRAMFS), accel=linux_engine(engine), timeout=300)
    with Machine(config) as vm:
        result = lg.shell_exchange(vm, b"echo marker-$((6*7))\n", b"marker-42\r\n", prompt=lg.PROMPT)
    assert result.reason == SYSTEM_EVENT and "reset" in result.detail and result.exit_status == 0, result.detail


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
