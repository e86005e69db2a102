"""Every guest program, snapshotted at several points of its progress on each engine and
restored on each engine (KVM->KVM, KVM->unicorn, unicorn->KVM, unicorn->unicorn), gives the
output and exit status of an uninterrupted run (its .expect file): the output before the
snapshot plus the restored run's output is the whole of it.

The points (tests/snapshot_points.py): the first byte of output, the middle of it, and where
the program does what a snapshot must catch in flight: a sleep (sleep), a read waiting for
input that only the restored VM gets (echo), a computation (compute, ticks), a disk request
(blk, blk-ro, blkbench, virtio-evil).
"""
import functools

import pytest

from conftest import ENGINES, _probe
from snapshot_points import IdleAfter, Notify, Output, RunningAfter, finish, save_at
from vmm import paths
from vmm.guest_tests import all_programs, load_expectation, scratch_disks
from vmm.machine import engine_class

SCENARIOS = {
    "sleep": [IdleAfter(0)],                                  # inside the first 200 ms sleep
    "echo": [IdleAfter(0, withhold_stdin=True)],              # blocked in read(), no input yet
    "compute": [RunningAfter(len("compute: 4 MiB\n"))],       # hashing its 4 MiB
    "ticks": [RunningAfter(0)],                               # its 300 ms of ring-3 work
    "blk": [Notify(2)], "blk-ro": [Notify(1)], "blkbench": [Notify(5)], "virtio-evil": [Notify(3)],
}


def points(name):
    size = len(load_expectation(name).output)
    found = [Output(1)] + ([Output(size // 2)] if size > 2 else [])
    return found + SCENARIOS.get(name, [])


# The guest programs booted as --initrd (the test root file system's run from --rootfs, which
# snapshots do not record: a snapshot of them is not part of issue 13).
CASES = [(name, point) for name in all_programs([paths.PROGRAMS_SOURCE]) for point in points(name)]


def pair_params():
    params = []
    for save in ENGINES:
        for restore in ENGINES:
            reasons = [f"{e} unavailable: {r}" for e in {save, restore} if (r := _probe(e))]
            marks = [pytest.mark.skip(reason="; ".join(reasons))] if reasons else []
            if "kvm" in (save, restore):
                marks.append(pytest.mark.kvm)
            params.append(pytest.param(save, restore, marks=marks, id=f"{save}-to-{restore}"))
    return params


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """One snapshot per (program, point, saving engine), shared by the engines restoring it."""
    folder = tmp_path_factory.mktemp("snapshots")
    disk_sets = []

    @functools.lru_cache(maxsize=None)
    def take(name, point, engine):
        expect = load_expectation(name)
        disks = scratch_disks(expect.disks)
        disk_sets.append(disks)
        path = str(folder / f"{name}-{len(disk_sets)}-{engine}")
        return save_at(name, engine, point, path, disks.__enter__(), stdin=expect.stdin)

    yield take
    for disks in disk_sets:
        disks.__exit__(None, None, None)


def skip_reason(name, save, restore):
    expect = load_expectation(name)
    for engine, features in ((save, expect.requires), (restore, expect.requires + expect.restore_requires)):
        missing = engine_class(engine).missing_features()
        for feature in features:
            if feature in missing:
                return f"{name} on {engine}: {missing[feature]}"
    return None


@pytest.mark.parametrize("save,restore", pair_params())
@pytest.mark.parametrize("name,point", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_restored_run_finishes_as_an_uninterrupted_one(name, point, save, restore, snapshots, kernel_path):
    reason = skip_reason(name, save, restore)
    if reason:
        pytest.skip(reason)
    expect = load_expectation(name)
    saved = snapshots(name, point, save)
    saved.put_disks_back()
    result = finish(saved.path, restore, saved.stdin_left)
    assert saved.before + result.serial == expect.output, (result.reason, result.detail, saved.before, result.serial)
    assert result.exit_status == expect.status, result.detail
