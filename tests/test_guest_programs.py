"""Every guest program beyond its own .expect check: through the firmware, against QEMU (an
independent PVH implementation) and, where the program uses only Linux-compatible calls,
against the same binary run as a plain Linux process.

The check of each program against its .expect file on every engine is the pytest plugin's
(vmm/pytest_plugin.py): pyproject's testpaths include guest/programs, where each NAME.expect
is collected as NAME[kvm] and NAME[unicorn]. As every engine's output must equal the same
bytes, the engines agree with one another whenever those items pass."""
import functools
import importlib.util
import signal
import subprocess

import pytest

from conftest import engine_params
from vmm import paths
from vmm.guest_tests import FIRMWARE_BANNER, all_programs, load_expectation, run_program

PROGRAMS = all_programs()
QEMU_TIMEOUT = 120


@functools.lru_cache(maxsize=None)
def run_cached(name, engine, firmware=None):
    return run_program(name, engine, firmware=firmware)


@pytest.mark.parametrize("engine", engine_params())
@pytest.mark.parametrize("name", PROGRAMS)
def test_program_through_firmware_meets_its_expectation(name, engine, kernel_path):
    """The same program booted like real hardware: reset vector, firmware, fw_cfg."""
    run = run_cached(name, engine, str(paths.DEFAULT_FIRMWARE))
    if run.skipped:
        pytest.skip(f"{name} on {engine}: {run.skipped}")
    assert run.passed, "\n".join(run.problems)


def run_under_qemu(qemu, kernel_path, name, machine="microvm", bios=None):
    """(serial output, our-style status) of `name` under QEMU TCG: an independent PVH loader,
    8250, and fw_cfg implementation."""
    expect = load_expectation(name)
    if "qemu" in expect.skip:
        pytest.skip(f"{name}: {expect.skip['qemu']}")
    append = "console=ttyS0" + (" -- " + " ".join(expect.args) if expect.args else "")
    cmd = [qemu, "-M", machine, "-accel", "tcg", "-nodefaults", "-no-user-config", "-display", "none",
           "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", "64M",
           "-kernel", kernel_path, "-initrd", str(paths.program_path(name)), "-append", append]
    if bios:
        cmd += ["-bios", bios]
    proc = subprocess.run(cmd, input=expect.stdin, capture_output=True, timeout=QEMU_TIMEOUT)
    return expect, proc


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_under_qemu_matches(name, kernel_path, qemu):
    expect, proc = run_under_qemu(qemu, kernel_path, name)
    assert proc.stdout == expect.output, proc.stderr.decode(errors="replace")
    # isa-debug-exit makes QEMU exit with (status << 1) | 1, truncated to 8 bits.
    assert proc.returncode == ((expect.status << 1) | 1) & 0xFF


@pytest.mark.parametrize("name", PROGRAMS)
def test_our_firmware_under_qemu_matches(name, kernel_path, qemu):
    """Our firmware image boots the same kernel under QEMU: it speaks the real fw_cfg."""
    expect, proc = run_under_qemu(qemu, kernel_path, name, machine="pc", bios=str(paths.DEFAULT_FIRMWARE))
    assert proc.stdout == FIRMWARE_BANNER + expect.output, proc.stderr.decode(errors="replace")
    assert proc.returncode == ((expect.status << 1) | 1) & 0xFF


@pytest.mark.parametrize("name", PROGRAMS)
def test_program_as_a_linux_process_matches(name):
    expect = load_expectation(name)
    program = paths.program_path(name)
    proc = subprocess.run([str(program)] + expect.args, input=expect.stdin, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=60)
    status = 128 + signal.Signals(-proc.returncode) if proc.returncode < 0 else proc.returncode
    assert status == expect.status
    if "linux" in expect.skip:          # the status had to agree; the output is not compared
        pytest.skip(f"{name} as a Linux process: {expect.skip['linux']}")
    assert proc.stdout == expect.output


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
