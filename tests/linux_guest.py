"""Running Debian's kernel with the test initramfs (guest/linux) on our VMM and under QEMU
microvm, and reading a test script's output out of the console log.

A script's output runs from its first `vmmtest:` line to `vmmtest: done`; /init silences
kernel messages before it starts the script, so those lines are the script's alone.
"""
import subprocess
import threading
import time

from vmm import paths

LINUX_BUILD = paths.GUEST_BUILD / "linux"
KERNEL = LINUX_BUILD / "vmlinuz"
INITRAMFS = LINUX_BUILD / "initramfs.cpio.gz"
DISK_TEXT = b"hello from an ext4 disk\n"
CMDLINE = "console=ttyS0 panic=-1 tsc=reliable"     # also our default; QEMU gets it explicitly
PROMPT = b"/ # "
SHELL_WAIT = 240                # seconds for the shell to answer (tens of seconds on unicorn)


def require_build():
    missing = [str(p) for p in (KERNEL, INITRAMFS) if not p.exists()]
    if missing:
        import pytest
        pytest.fail(f"{', '.join(missing)} not built: run `make test`, which fetches and builds them")


def make_ext4(directory):
    """An 8 MiB ext4 image made with `mkfs.ext4 -d`, holding hello.txt."""
    root = directory / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(DISK_TEXT)
    image = directory / "disk.img"
    with open(image, "wb") as f:
        f.truncate(8 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", "-d", str(root), str(image)], check=True, capture_output=True)
    return image


def script_output(console: bytes) -> list:
    text = console.decode(errors="replace").replace("\r", "")
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("vmmtest:")]
    if not starts:
        return []
    out = []
    for line in lines[starts[0]:]:
        if line.startswith("["):            # a kernel message after all (panics are printed at any level)
            continue
        out.append(line)
        if line == "vmmtest: done":
            break
    return out


def qemu_command(qemu, script, disk=None, mem="256M"):
    """QEMU microvm (TCG) with ACPI and the same devices. Its guest calibrates the TSC against
    the PIT, which on a loaded host sometimes fails and leaves the kernel with no timer: we
    give it the host's TSC rate (tsc_early_khz) as our CPUID gives ours."""
    from vmm.engines.unicorn import UnicornEngine
    command = [qemu, "-M", "microvm,acpi=on,rtc=on", "-accel", "tcg", "-m", mem, "-nodefaults",
               "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
               "-kernel", str(KERNEL), "-initrd", str(INITRAMFS),
               "-append", f"{CMDLINE} tsc_early_khz={UnicornEngine.tsc_khz()} vmmtest={script}"]
    if disk is not None:
        command += ["-drive", f"if=none,id=d0,file={disk},format=raw", "-device", "virtio-blk-device,drive=d0"]
    # The virtio console shares the serial console's output, as on our VMM.
    command += ["-device", "virtio-rng-device", "-device", "virtio-serial-device",
                "-device", "virtconsole,chardev=console"]
    return [c if c != "stdio" else "chardev:console" for c in command] + \
        ["-chardev", "stdio,id=console,mux=on"]


def run_qemu(qemu, script, disk=None, timeout=90):
    run = subprocess.run(qemu_command(qemu, script, disk), capture_output=True, timeout=timeout)
    return run.stdout


def boot_vmm(engine, script, disk=None, timeout=300):
    """(RunResult, console bytes) for `script` on our VMM with its Linux defaults."""
    from vmm import Machine, MachineConfig
    config = MachineConfig(kernel=str(KERNEL), initrd=str(INITRAMFS), accel=engine, timeout=timeout,
                           cmdline=f"{CMDLINE} vmmtest={script}", disks=[str(disk)] if disk else [])
    with Machine(config) as vm:
        result = vm.run()
    return result, result.serial


def linux_skip_reason(engine):
    """Why Linux cannot run on `engine` here (Engine.missing_features), or None."""
    from vmm.machine import engine_class
    return engine_class(engine).missing_features().get("linux-ring0")


def wait_for(vm, text, runner, seconds=SHELL_WAIT):
    """True once `text` is on vm's console; False if the VM's thread ended or time ran out."""
    end = time.monotonic() + seconds
    while text not in bytes(vm.serial.captured) and runner.is_alive() and time.monotonic() < end:
        time.sleep(0.05)
    return text in bytes(vm.serial.captured)


def shell_exchange(vm, command, answer, prompt=None):
    """Run vm on a thread: wait for `prompt` (if given), type `command`, wait for `answer`, then
    `reboot -f`. Returns vm.run()'s result; the VM is stopped if the shell never answers."""
    outcome = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("result", vm.run()))
    runner.start()
    try:
        if prompt is not None:
            assert wait_for(vm, prompt, runner), bytes(vm.serial.captured)[-2000:]
        vm.send_input(command)
        assert wait_for(vm, answer, runner), bytes(vm.serial.captured)[-2000:]
        vm.send_input(b"reboot -f\n")
    finally:
        runner.join(60)
        if runner.is_alive():
            vm.stop("test gave up")
            runner.join()
    return outcome["result"]
