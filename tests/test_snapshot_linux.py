"""Debian's Linux at its busybox shell prompt, snapshotted (on the software engine, but see
snapshot_engine) and restored:
the restored shell answers a command, and `reboot -f` ends it. Restored on KVM too where KVM
runs a Linux ring 0 (`make test-nested`; this machine's PVM cannot, and says so). One boot
(tens of seconds on unicorn) serves every restore."""
import threading
import time

import pytest

import linux_guest as lg
from conftest import emulated_host_cpu, engine_params
from vmm import Machine, MachineConfig
from vmm.outcome import SYSTEM_EVENT

PROMPT = b"/ # "
WAIT = 240


def wait_for(vm, text, seconds=WAIT, runner=None):
    end = time.monotonic() + seconds
    while text not in bytes(vm.serial.captured) and time.monotonic() < end:
        if runner is not None and not runner.is_alive():
            break
        time.sleep(0.05)
    return text in bytes(vm.serial.captured)


def snapshot_engine():
    """unicorn, so that KVM restores a snapshot taken on the other engine; but where the host's
    CPU is itself emulated (`make test-nested`, inside QEMU's TCG) unicorn takes over 240 s to
    boot Linux (measured: it was 78 s into the kernel's own clock then), so there the KVM that
    runs Linux takes the snapshot, and the restore is KVM to KVM."""
    return "kvm" if emulated_host_cpu() and not lg.linux_skip_reason("kvm") else "unicorn"


@pytest.fixture(scope="module")
def shell_snapshot(tmp_path_factory):
    """Linux booted to its shell (on snapshot_engine()), saved there (the VM then stopped)."""
    lg.require_build()
    path = str(tmp_path_factory.mktemp("linux") / "shell")
    config = MachineConfig(kernel=str(lg.KERNEL), initrd=str(lg.INITRAMFS), accel=snapshot_engine(),
                           timeout=WAIT + 60)
    with Machine(config) as vm:
        runner = threading.Thread(target=vm.run, daemon=True)
        runner.start()
        try:
            assert wait_for(vm, PROMPT, runner=runner), bytes(vm.serial.captured)[-2000:]
            vm.pause()
            vm.snapshot(path)
        finally:
            vm.stop("snapshot taken")
            runner.join(60)
    return path


@pytest.mark.parametrize("engine", engine_params())
def test_linux_shell_answers_after_a_restore(shell_snapshot, engine):
    reason = lg.linux_skip_reason(engine)
    if reason:
        pytest.skip(reason)
    with Machine.restore(shell_snapshot, accel=engine, timeout=WAIT) as vm:
        outcome = {}
        runner = threading.Thread(target=lambda: outcome.setdefault("result", vm.run()))
        runner.start()
        try:
            vm.send_input(b"echo restored-$((6*7))\n")
            assert wait_for(vm, b"restored-42\r\n", runner=runner), bytes(vm.serial.captured)[-2000:]
            vm.send_input(b"reboot -f\n")
        finally:
            runner.join(60)
            if runner.is_alive():
                vm.stop("test gave up")
                runner.join()
    result = outcome["result"]
    assert result.reason == SYSTEM_EVENT and "reset" in result.detail and result.exit_status == 0, result.detail
