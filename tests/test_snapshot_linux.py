"""Debian's Linux at its busybox shell prompt, snapshotted (on the software engine, but see
snapshot_engine) and restored: the restored shell answers a command, and `reboot -f` ends it.
Restored on KVM too where KVM runs a Linux ring 0 (`make test-nested`; this machine's PVM
cannot, and says so). One boot (tens of seconds on unicorn) serves every restore."""
import threading

import pytest

import linux_guest as lg
from conftest import emulated_host_cpu, engine_params
from vmm import Machine, MachineConfig
from vmm.outcome import SYSTEM_EVENT


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
                           timeout=lg.SHELL_WAIT + 60)
    with Machine(config) as vm:
        runner = threading.Thread(target=vm.run, daemon=True)
        runner.start()
        try:
            assert lg.wait_for(vm, lg.PROMPT, runner), bytes(vm.serial.captured)[-2000:]
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
    with Machine.restore(shell_snapshot, accel=engine, timeout=lg.SHELL_WAIT) as vm:
        result = lg.shell_exchange(vm, b"echo restored-$((6*7))\n", b"restored-42\r\n")
    assert result.reason == SYSTEM_EVENT and "reset" in result.detail and result.exit_status == 0, result.detail
