"""Snapshot a guest program at a point chosen by its progress, and finish it from the snapshot.

A point is where the run is paused and saved:
  Output(k)        at the k-th byte of serial output, from the UART's own output path (the
                   guest stops at that OUT on KVM, at the end of its translated block on unicorn)
  IdleAfter(k)     once k bytes are out and then the vCPU sits in HLT: inside a sleep, or a read
                   that waits for input (with `withhold_stdin`, the input reaches only the restored VM)
  Notify(n)        at the guest's n-th QueueNotify to the first virtio disk: in the middle of disk I/O
  RunningAfter(k)  once k bytes are out, wherever the guest then is (mid-computation)
Every point is a fact about the guest's progress, not a time: what the test asserts (the output
and status of save-then-restore equal an uninterrupted run's) holds wherever the guest stopped.
"""
import hashlib
import os
import shutil
import threading
import time
from dataclasses import dataclass

from vmm import Machine, MachineConfig, paths
from vmm.devices.virtio import mmio as virtio_mmio
from vmm.guest_tests import load_expectation, scratch_disks

WAIT = 120.0


@dataclass(frozen=True)
class Output:
    at: int


@dataclass(frozen=True)
class IdleAfter:
    at: int
    withhold_stdin: bool = False


@dataclass(frozen=True)
class Notify:
    count: int


@dataclass(frozen=True)
class RunningAfter:
    at: int


@dataclass
class Saved:
    before: bytes               # serial output up to the snapshot
    path: str
    stdin_left: bytes           # input the restored run gets
    disks: list                 # [(disk path, copy as of the snapshot)]

    def put_disks_back(self):
        """Each disk as it was at the snapshot, modification time included (a restore checks
        it), so that the snapshot can be restored again after a restored run wrote them."""
        for path, copy in self.disks:
            shutil.copy2(copy, path)


def program_config(name, engine, disks, stdin=None, timeout=WAIT):
    expect = load_expectation(name)
    return MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path(name)),
                         program_args=expect.args, accel=engine, stdin=stdin, timeout=timeout, disks=disks)


def file_sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def save_at(name, engine, point, path, disks, stdin=b"") -> Saved:
    """Run `name` on `engine` until `point`, snapshot it into `path`, and stop it."""
    withhold = isinstance(point, IdleAfter) and point.withhold_stdin
    config = program_config(name, engine, disks, stdin=None if withhold else (stdin or None))
    with Machine(config) as vm:
        reached = threading.Event()
        _arm(vm, point, reached)
        result = {}
        runner = threading.Thread(target=lambda: result.setdefault("run", vm.run()), daemon=True)
        runner.start()
        try:
            if not _wait(lambda: reached.is_set() or not runner.is_alive()):
                raise AssertionError(f"{name}: {point} not reached in {WAIT} s")
            if not runner.is_alive():
                raise AssertionError(f"{name} ended before {point}: {result['run'].detail}")
            if isinstance(point, IdleAfter):
                if not _wait(lambda: vm.engine.idle() or not runner.is_alive(), poll=0.0005):
                    raise AssertionError(f"{name}: never idle after {point}")
            if isinstance(point, (IdleAfter, RunningAfter)):
                vm.pause()
            elif not _wait(lambda: vm.gate.parked or not runner.is_alive()):
                raise AssertionError(f"{name}: no pause at {point}")
            vm.snapshot(path)
        finally:
            vm.stop("the test took its snapshot")
            runner.join(WAIT)
        before = bytes(vm.serial.captured)
    copies = []
    for index, disk in enumerate(disks):
        copy = os.path.join(path + f".disk{index}")
        shutil.copy2(disk.path, copy)
        copies.append((disk.path, copy))
    return Saved(before, path, stdin if withhold else b"", copies)


def _arm(vm, point, reached):
    """Install the trigger for `point` on the devices."""
    if isinstance(point, Notify):
        transport = vm.virtio_transports[0]
        write, seen = transport.write, [0]

        def notify_then_pause(offset, size, value):
            write(offset, size, value)
            if offset == virtio_mmio.QUEUE_NOTIFY:
                seen[0] += 1
                if seen[0] == point.count:
                    vm.gate.request()
                    reached.set()
        transport.write = notify_then_pause
        return
    sink, fired = vm.serial, []

    def after_output():
        if not fired and sink.total_bytes >= point.at:
            fired.append(True)
            if isinstance(point, Output):
                vm.gate.request()
            reached.set()

    put, write = vm.uart._output, vm.virtio_console._output     # the UART's bytes, the virtio console's

    def put_then_check(value):
        put(value)
        after_output()

    def write_then_check(data):
        write(data)
        after_output()
    vm.uart._output, vm.virtio_console._output = put_then_check, write_then_check
    if point.at == 0:
        reached.set()


def _wait(condition, seconds=WAIT, poll=0.002):
    end = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > end:
            return False
        time.sleep(poll)
    return True


def finish(path, engine, stdin=b""):
    """Restore the snapshot at `path` on `engine` and run it to the end: the RunResult."""
    with Machine.restore(path, accel=engine, timeout=WAIT, stdin=stdin or None) as vm:
        return vm.run()


def uninterrupted(name, engine, disks, stdin=b""):
    with Machine(program_config(name, engine, disks, stdin=stdin or None)) as vm:
        return vm.run()
