"""Snapshots from the API: pause and resume from another thread, save and go on, restore twice
from one snapshot, the memory file (sparse, never written, mapped lazily), diff snapshots on
KVM's dirty log, and every way a snapshot is refused (corrupt, truncated, newer, changed disk)."""
import hashlib
import json
import os
import threading
import time

import pytest

from conftest import engine_params
from snapshot_points import Output, finish, program_config, save_at
from vmm import Machine
from vmm.bench.snapshot import resident_bytes
from vmm.errors import InputError, UsageError, VmmError
from vmm.guest_tests import load_expectation, scratch_disks
from vmm.snapshot import manifest as mf

WAIT = 60


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def start(vm):
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("run", vm.run()), daemon=True)
    thread.start()
    return thread, result


def wait_for(condition, seconds=WAIT):
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.002)


def pause_at_output(vm, counts):
    """The vCPU pauses (from the UART's output path) once each of `counts` serial bytes is out:
    points of the guest's progress, not times."""
    left, put = list(counts), vm.uart._output

    def put_then_check(value):
        put(value)
        if left and vm.serial.total_bytes >= left[0]:
            left.pop(0)
            vm.gate.request()
    vm.uart._output = put_then_check


@pytest.fixture
def hello_snapshot(tmp_path, kernel_path):
    """`hello` saved on unicorn in the middle of its line."""
    return save_at("hello", "unicorn", Output(9), str(tmp_path / "hello"), [])


@pytest.mark.parametrize("engine", engine_params())
def test_pause_holds_the_guest_and_resume_lets_it_finish(engine, kernel_path):
    """pause() from another thread stops the vCPU (input sent meanwhile is not read, the run
    does not end); resume() lets it finish exactly as it would have. `echo` cannot end before
    its line comes, so the pause always finds it running."""
    expect = load_expectation("echo")
    with Machine(program_config("echo", engine, [])) as vm:
        thread, result = start(vm)
        wait_for(lambda: vm.gate.running)
        vm.pause()
        assert vm.paused and vm.gate.parked
        vm.send_input(expect.stdin)
        time.sleep(0.1)
        assert vm.serial.total_bytes == 0 and thread.is_alive()
        vm.resume()
        thread.join(WAIT)
    assert result["run"].serial == expect.output and result["run"].exit_status == expect.status


def test_a_paused_software_engine_stops_guest_time(kernel_path):
    """While paused the guest's clock stands still: the TSC a snapshot saves does not move."""
    with Machine(program_config("sleep", "unicorn", [])) as vm:
        thread, _ = start(vm)
        wait_for(lambda: vm.engine.idle())
        vm.pause()
        first = vm.engine.save_vcpu()["tsc"]
        time.sleep(0.05)
        assert vm.engine.save_vcpu()["tsc"] == first
        vm.stop("done")
        thread.join(WAIT)


@pytest.mark.parametrize("engine", engine_params())
def test_snapshot_and_go_on(engine, kernel_path, tmp_path):
    """A snapshot taken while the VM runs (Ctrl-A s, the control socket) pauses it for the
    save and resumes it: the run finishes with the uninterrupted output. (`echo` waits for
    its line, so the VM is running, never ended, when the snapshot is taken.)"""
    expect = load_expectation("echo")
    with Machine(program_config("echo", engine, [])) as vm:
        thread, result = start(vm)
        wait_for(lambda: vm.gate.running)
        saved = vm.snapshot(str(tmp_path / "midway"))
        assert not vm.paused and saved.seconds > 0 and not saved.diff
        vm.send_input(expect.stdin)
        thread.join(WAIT)
    assert result["run"].serial == expect.output and result["run"].exit_status == expect.status
    assert os.path.isfile(tmp_path / "midway" / mf.MANIFEST)


def test_a_snapshot_restored_twice_gives_two_independent_vms(hello_snapshot, kernel_path):
    """Both restores finish the program; neither writes the memory file, and what one
    restored guest writes to RAM the other does not see."""
    memory_file = os.path.join(hello_snapshot.path, mf.MEMORY)
    before = sha256(memory_file)
    first = Machine.restore(hello_snapshot.path, accel="unicorn", timeout=WAIT)
    second = Machine.restore(hello_snapshot.path, accel="unicorn", timeout=WAIT)
    try:
        first.memory.write(0x1000, b"only in the first")
        assert second.memory.read(0x1000, 17) != b"only in the first"
        outputs = [vm.run() for vm in (first, second)]
    finally:
        first.close()
        second.close()
    for result in outputs:
        assert hello_snapshot.before + result.serial == b"hello from ring 3\n" and result.exit_status == 0
    assert sha256(memory_file) == before


def test_memory_is_sparse_and_mapped_lazily(hello_snapshot, kernel_path):
    """Zero pages are holes in the file; a restore reads almost none of it up front."""
    path = os.path.join(hello_snapshot.path, mf.MEMORY)
    info = os.stat(path)
    assert info.st_size == 64 << 20 and info.st_blocks * 512 < 2 << 20
    with Machine.restore(hello_snapshot.path, accel="unicorn") as vm:
        assert resident_bytes(vm.memory.host_address) < 1 << 20


def edit_manifest(path, change):
    manifest = json.load(open(os.path.join(path, mf.MANIFEST)))
    change(manifest)
    with open(os.path.join(path, mf.MANIFEST), "w") as f:
        json.dump(manifest, f)


def test_refused_snapshots(hello_snapshot, tmp_path):
    path = hello_snapshot.path
    manifest = os.path.join(path, mf.MANIFEST)
    original = open(manifest, "rb").read()
    edit_manifest(path, lambda m: m["vcpu"]["state"]["cpu"].update(rip=0))
    with pytest.raises(mf.SnapshotError, match="checksum: the snapshot is corrupt"):
        Machine.restore(path, accel="unicorn")
    open(manifest, "wb").write(original[:len(original) // 2])
    with pytest.raises(mf.SnapshotError, match="not valid JSON"):
        Machine.restore(path, accel="unicorn")
    newer = json.loads(original)
    newer["version"] = mf.VERSION + 1
    open(manifest, "w").write(json.dumps(newer))
    with pytest.raises(mf.SnapshotError, match=f"format version {mf.VERSION + 1} is newer"):
        Machine.restore(path, accel="unicorn")
    open(manifest, "wb").write(original)
    memory = os.path.join(path, mf.MEMORY)
    os.truncate(memory, 4 << 20)
    with pytest.raises(mf.SnapshotError, match="truncated"):
        Machine.restore(path, accel="unicorn")
    with pytest.raises(InputError):
        Machine.restore(str(tmp_path / "nowhere"), accel="unicorn")


def test_a_device_state_from_a_newer_vmm_is_refused(hello_snapshot):
    body = json.load(open(os.path.join(hello_snapshot.path, mf.MANIFEST)))
    body["devices"]["uart"]["version"] = 99
    mf.write(hello_snapshot.path, body)                 # a valid checksum, an unknown state
    with pytest.raises(mf.SnapshotError, match="uart state has version 99"):
        Machine.restore(hello_snapshot.path, accel="unicorn")


def test_a_changed_disk_is_refused_unless_forced(tmp_path, kernel_path):
    expect = load_expectation("blk")
    with scratch_disks(expect.disks) as disks:
        saved = save_at("blk", "unicorn", Output(20), str(tmp_path / "blk"), disks)
        with open(disks[0].path, "r+b") as f:
            f.write(b"changed")
        with pytest.raises(mf.SnapshotError, match="has changed since the snapshot"):
            Machine.restore(saved.path, accel="unicorn")
        saved.put_disks_back()
        os.utime(disks[0].path, ns=(0, 0))
        Machine.restore(saved.path, accel="unicorn", force=True).close()


def test_a_stopped_vm_cannot_be_snapshotted(tmp_path, kernel_path):
    with Machine(program_config("hello", "unicorn", [])) as vm:
        vm.run()
        with pytest.raises(VmmError, match="has ended"):
            vm.snapshot(str(tmp_path / "late"))


def test_the_software_engine_keeps_no_dirty_log(kernel_path):
    with Machine(program_config("hello", "unicorn", [])) as vm:
        with pytest.raises(UsageError, match="dirty"):
            vm.track_dirty_pages()


def test_diff_snapshots_on_kvms_dirty_log(tmp_path, kernel_path, requires_kvm):
    """With dirty tracking, the second snapshot writes only what changed since the first, and
    it restores (on either engine) on top of it; a base that was replaced is refused."""
    expect = load_expectation("faults")
    with Machine(program_config("faults", "kvm", [])) as vm:
        vm.track_dirty_pages()
        pause_at_output(vm, [40, 200])
        thread, _ = start(vm)
        wait_for(lambda: vm.paused and vm.gate.parked)
        full = vm.snapshot(str(tmp_path / "first"))
        vm.resume()
        wait_for(lambda: vm.paused and vm.gate.parked)
        diff = vm.snapshot(str(tmp_path / "second"))
        before = bytes(vm.serial.captured)
        vm.stop("done")
        thread.join(WAIT)
    assert not full.diff and diff.diff and diff.memory_bytes < full.memory_bytes / 2
    for engine in ("kvm", "unicorn"):
        result = finish(diff.path, engine)
        assert before + result.serial == expect.output
    edit = json.load(open(tmp_path / "first" / mf.MANIFEST))
    mf.write(str(tmp_path / "first"), dict(edit, created="another time"))
    with pytest.raises(mf.SnapshotError, match="replaced since"):
        Machine.restore(diff.path, accel="kvm")


def test_a_fifo_in_place_of_a_snapshot_file_is_refused_without_blocking(hello_snapshot, tmp_path):
    """Files a restore reads are opened as user_files does: a FIFO never blocks the VMM."""
    memory = os.path.join(hello_snapshot.path, mf.MEMORY)
    os.unlink(memory)
    os.mkfifo(memory)
    with pytest.raises(mf.SnapshotError, match="not a regular file"):
        Machine.restore(hello_snapshot.path, accel="unicorn")
    (tmp_path / "fifo").mkdir()
    os.mkfifo(tmp_path / "fifo" / mf.MANIFEST)
    with pytest.raises(InputError, match="FIFO"):
        Machine.restore(str(tmp_path / "fifo"), accel="unicorn")


def test_kvm_loads_the_saved_sse_and_x87_registers_into_a_fresh_vcpu(kernel_path, requires_kvm):
    """KVM_SET_FPU alone writes the FXSAVE area but not XSTATE_BV: on a vCPU that never used
    SSE, XRSTOR gave the guest zeros in XMM0-15 (a snapshot taken by the software engine
    inside compute's SSE table loop restored on KVM printed a wrong CRC-32). What KVM hands
    XRSTOR (KVM_GET_XSAVE: init state for a component whose bit is clear) holds the values."""
    with Machine(program_config("hello", "kvm", [])) as vm:
        state = vm.engine.save_vcpu()
        xmm = [bytes(range(i, i + 16)).hex() for i in range(16)]
        st0 = "0000000000000080ff3f"                     # 1.0 as an 80-bit extended real
        state["fpu"].update(xmm=xmm, st=[st0] + state["fpu"]["st"][1:], ftw=0x80, fsw=7 << 11)
        vm.engine.load_vcpu(state)
        image = bytes(vm.engine._vcpu.get_xsave().region)
        assert int.from_bytes(image[512:520], "little") & 0b11 == 0b11      # XSTATE_BV: x87, SSE
        assert [image[160 + 16 * i:176 + 16 * i].hex() for i in range(16)] == xmm   # FXSAVE's XMM0-15
        assert image[32:42].hex() == st0                                        # ST0 (physical R7)
        assert vm.engine.save_vcpu()["fpu"]["xmm"] == xmm
