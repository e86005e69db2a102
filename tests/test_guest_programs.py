"""Every guest program beyond its own .expect check: through the firmware, against QEMU (an
independent PVH implementation) and, where the program uses only Linux-compatible calls,
against the same binary run as a plain Linux process.

The check of each guest/programs program against its .expect file on every engine is the
pytest plugin's (vmm/pytest_plugin.py): pyproject's testpaths include guest/programs, where
each NAME.expect is collected as NAME[kvm] and NAME[unicorn]. The programs of the test root
file system (guest/rootfs/programs: glibc, musl, busybox) are checked on every engine here,
where the engines must also agree byte for byte, and they run in the container launcher on
the same directory too, where they must print the same bytes as in the VM."""
import functools
import importlib.util
import signal
import subprocess

import pytest

from conftest import engine_params
from vmm import paths
from vmm.guest_tests import (FIRMWARE_BANNER, all_programs, load_expectation, run_in_container, run_on_host,
                             run_program)
from vmm.initramfs import pack_directory

PROGRAMS = all_programs()
QEMU_TIMEOUT = 120


@functools.lru_cache(maxsize=None)
def run_cached(name, engine, firmware=None):
    return run_program(name, engine, firmware=firmware)


@functools.lru_cache(maxsize=None)
def container_run_cached(name):
    return run_in_container(load_expectation(name))


ROOTFS_PROGRAMS = [name for name in PROGRAMS if load_expectation(name).rootfs]


@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("name", ROOTFS_PROGRAMS)
def test_rootfs_program_meets_its_expectation(name, engine, kernel_path):
    run = run_cached(name, engine)
    if run.skipped:
        pytest.skip(f"{name} on {engine}: {run.skipped}")
    assert run.passed, "\n".join(run.problems)


@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_through_firmware_meets_its_expectation(name, engine, kernel_path):
    """The same program booted like real hardware: reset vector, firmware, fw_cfg."""
    run = run_cached(name, engine, str(paths.DEFAULT_FIRMWARE))
    if run.skipped:
        pytest.skip(f"{name} on {engine}: {run.skipped}")
    assert run.passed, "\n".join(run.problems)


@pytest.mark.kvm
@pytest.mark.parametrize("name", ROOTFS_PROGRAMS)
def test_engines_agree_byte_for_byte(name, kernel_path):
    from conftest import ENGINES, emulated_host_cpu
    from vmm.machine import probe
    if emulated_host_cpu():
        pytest.skip("the host CPU is emulated (make test-nested): unicorn inside QEMU's TCG is too slow for "
                    "the timed programs (gothreads failed this once of two runs there); make test compares the "
                    "engines on the real CPU")
    engines = [e for e in ENGINES if probe(e) is None]
    if len(engines) < 2:
        pytest.skip(f"only {engines} available: nothing to compare")
    runs = [run for run in (run_cached(name, engine) for engine in engines) if not run.skipped]
    if len(runs) < 2:
        pytest.skip(f"{name} cannot be judged on every engine here")
    assert len({(r.serial, r.status) for r in runs}) == 1, [(r.engine, r.status, r.serial) for r in runs]


def run_under_qemu(qemu, kernel_path, name, tmp_path, machine="microvm", bios=None):
    """(serial output, our-style status) of `name` under QEMU TCG: an independent PVH loader,
    8250, and fw_cfg implementation. A root file system goes as a cpio initrd, packed as the
    VMM packs it."""
    expect = load_expectation(name)
    if "qemu" in expect.skip:
        pytest.skip(f"{name}: {expect.skip['qemu']}")
    args = expect.argv() if expect.rootfs else expect.args
    append = "console=ttyS0" + (" -- " + " ".join(args) if args else "")
    initrd = str(paths.program_path(name))
    if expect.rootfs:
        initrd = str(tmp_path / "rootfs.cpio")
        with open(initrd, "wb") as f:
            f.write(pack_directory(expect.root()))
    cmd = [qemu, "-M", machine, "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none",
           "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", "128M",
           "-kernel", kernel_path, "-initrd", initrd, "-append", append]
    if bios:
        cmd += ["-bios", bios]
    proc = subprocess.run(cmd, input=expect.stdin, capture_output=True, timeout=QEMU_TIMEOUT)
    return expect, proc


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_under_qemu_matches(name, kernel_path, qemu, tmp_path):
    expect, proc = run_under_qemu(qemu, kernel_path, name, tmp_path)
    assert expect.matches(proc.stdout), proc.stderr.decode(errors="replace")
    # isa-debug-exit makes QEMU exit with (status << 1) | 1, truncated to 8 bits.
    assert proc.returncode == ((expect.status << 1) | 1) & 0xFF


@pytest.mark.parametrize("name", PROGRAMS)
def test_our_firmware_under_qemu_matches(name, kernel_path, qemu, tmp_path):
    """Our firmware image boots the same kernel under QEMU: it speaks the real fw_cfg."""
    expect, proc = run_under_qemu(qemu, kernel_path, name, tmp_path, machine="pc", bios=str(paths.DEFAULT_FIRMWARE))
    assert proc.stdout.startswith(FIRMWARE_BANNER), proc.stderr.decode(errors="replace")
    assert expect.matches(proc.stdout[len(FIRMWARE_BANNER):]), proc.stderr.decode(errors="replace")
    assert proc.returncode == ((expect.status << 1) | 1) & 0xFF


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_as_a_linux_process_matches(name):
    expect = load_expectation(name)
    if expect.rootfs:
        run = run_on_host(expect)
        if run.skipped:
            pytest.skip(run.skipped)
        assert run.status == expect.status
        assert expect.matches(run.output), run.output
        return
    program = paths.program_path(name)
    proc = subprocess.run([str(program)] + expect.args, input=expect.stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    status = 128 + signal.Signals(-proc.returncode) if proc.returncode < 0 else proc.returncode
    assert status == expect.status
    if "linux" in expect.skip:          # the status had to agree; the output is not compared
        pytest.skip(f"{name} as a Linux process: {expect.skip['linux']}")
    assert proc.stdout == expect.output


@pytest.mark.parametrize("name", ROOTFS_PROGRAMS)
def test_program_in_a_container_matches(name):
    """The same root file system in the container launcher: the same status and output."""
    expect = load_expectation(name)
    if "container" in expect.skip:
        pytest.skip(f"{name}: {expect.skip['container']}")
    run = container_run_cached(name)
    if run.skipped:
        pytest.skip(run.skipped)
    assert run.status == expect.status
    assert expect.matches(run.output), run.output


@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("name", ROOTFS_PROGRAMS)
def test_vm_and_container_print_the_same_bytes(name, engine, kernel_path):
    """One image, run as a VM and as a container: byte for byte, even where the .expect
    accepts any order of lines."""
    vm, container = run_cached(name, engine), container_run_cached(name)
    if vm.skipped or container.skipped:
        pytest.skip(vm.skipped or container.skipped)
    assert (vm.status, vm.serial) == (container.status, container.output)


def compute_reference():
    spec = importlib.util.spec_from_file_location("compute_reference", paths.PROGRAMS_SOURCE / "compute_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("engine", engine_params())
def test_compute_digest_matches_the_host(engine, kernel_path):
    from vmm import Machine, MachineConfig
    mib = 8
    config = MachineConfig(kernel=kernel_path, initrd=str(paths.program_path("compute")), program_args=[str(mib)],
                           accel=engine, timeout=300)
    with Machine(config) as vm:
        result = vm.run()
    assert result.exit_status == 0, result.detail
    assert result.serial.decode() == compute_reference().expected_output(mib)
