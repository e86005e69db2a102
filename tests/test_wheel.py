"""The wheel: `make dist` builds it (sdist, then the wheel from the sdist, whose setup.py builds
the guest from source), it installs into a fresh venv outside the checkout, and there, run
from `/`, `vmm` and `import vmm` find the guest through importlib.resources, and the sample
project runs under the installed wheel's pytest plugin.

The venv gets unicorn, capstone, pytest and pytest-xdist from the package index, as any
`pip install` of the wheel would (pip's cache makes it a few seconds after the first time)."""
import os
import subprocess
import sys
import tarfile
import zipfile

import pytest

import sample_runs
from sample_runs import available_engines, copy_sample_project, run_pytest
from vmm import paths
from vmm.guest_tests import FIRMWARE_BANNER, all_programs
from vmm.machine import probe

# What the wheel carries: guest/programs (the test root file system's programs are not packaged).
PACKAGED_PROGRAMS = all_programs([paths.PROGRAMS_SOURCE])

WHEEL_TAG = "py3-none-linux_x86_64"
COMMAND_TIMEOUT = 600
# The child must find nothing of this checkout: no PYTHONPATH, no VMM_ARTEFACTS.
CHILD_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", paths.ARTEFACTS_ENV, "PYTEST_ADDOPTS")}


class Installed:
    def __init__(self, root, wheel, sdist):
        self.root, self.wheel, self.sdist = root, wheel, sdist
        self.venv = root / "venv"
        self.bin = self.venv / "bin"

    def run(self, *argv, input=None) -> subprocess.CompletedProcess:
        """A command of the venv, run from `/`."""
        return subprocess.run([str(self.bin / argv[0]), *argv[1:]], cwd="/", env=CHILD_ENV, input=input,
                              capture_output=True, timeout=COMMAND_TIMEOUT)


def checked(command, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, command))} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    checked(["make", "-s", "-C", str(paths.REPO_ROOT), "dist", f"DIST={root / 'dist'}"], env=CHILD_ENV)
    wheels = list((root / "dist").glob("*.whl"))
    sdists = list((root / "dist").glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list((root / "dist").iterdir())
    result = Installed(root, wheels[0], sdists[0])
    checked([sys.executable, "-m", "venv", str(result.venv)], env=CHILD_ENV)
    checked([str(result.bin / "pip"), "install", "--quiet", str(result.wheel), "pytest", "pytest-xdist"],
            env=CHILD_ENV, cwd="/")
    return result


def test_the_wheel_is_for_x86_64_linux_and_carries_the_guest(installed):
    assert installed.wheel.name == f"pyvmm-{paths.package_version()}-{WHEEL_TAG}.whl"
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        metadata = next(n for n in names if n.endswith(".dist-info/WHEEL"))
        assert f"Tag: {WHEEL_TAG}" in wheel.read(metadata).decode()
        entry_points = wheel.read(metadata.replace("WHEEL", "entry_points.txt")).decode()
    assert "[pytest11]\nvmm = vmm.pytest_plugin" in entry_points
    assert {"vmm/_artefacts/kernel.elf", "vmm/_artefacts/firmware.bin"} <= names
    for name in PACKAGED_PROGRAMS:
        assert {f"vmm/_artefacts/programs/{name}", f"vmm/_artefacts/programs/{name}.expect"} <= names
    assert not [n for n in names if n.endswith((".o", ".d", ".a"))]


def test_the_sdist_holds_sources_and_no_build_output(installed):
    with tarfile.open(installed.sdist) as sdist:
        names = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    assert {"setup.py", "Makefile", "guest/kernel/Makefile", "firmware/Makefile", "guest/programs/hello.c",
            "guest/programs/hello.expect", "vmm/cli.py"} <= set(names)
    assert not [n for n in names if n.startswith(("guest/build", "firmware/build")) or n.endswith((".o", ".elf", ".bin"))]


def test_vmm_run_from_the_root_directory(installed):
    proc = installed.run("vmm", "run", "--stats")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"hello from ring 3\n"
    header = proc.stderr.decode().splitlines()
    assert header[0] == f"vmm (pyvmm) {paths.package_version()}; artefacts from the installed package"
    kernel = installed_artefact(installed, "kernel.elf")
    program = installed_artefact(installed, "programs/hello")
    assert f"build ids: kernel {sha256sum(kernel)}, initrd {sha256sum(program)}" in header


def test_vmm_run_firmware_from_the_root_directory(installed):
    proc = installed.run("vmm", "run", "--firmware", "--initrd", "args", "--", "a", "b")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(FIRMWARE_BANNER + b"argc: 3\n")


def test_vmm_test_runs_every_packaged_program(installed):
    proc = installed.run("vmm", "test", "--accel", "all", "-j", "2")
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    passed = [line.split()[1] for line in proc.stdout.decode().splitlines() if line.startswith("PASS ")]
    assert passed == PACKAGED_PROGRAMS, proc.stdout      # each judged on one engine at least, none failed
    assert f"{len(passed)} passed, 0 failed".encode() in proc.stdout


def test_vmm_bench_exits(installed):
    proc = installed.run("vmm", "bench", "exits", "--runs", "1", "--count", "2000")
    if probe("kvm") is None:        # the VMM row runs through Machine, which honours VMM_NO_KVM
        assert proc.returncode == 0, proc.stderr
        assert b"goal: the VMM path >= 80% of the bare loop: " in proc.stdout
    else:                   # the benchmark is KVM's: one line and the engine-unavailable status
        assert proc.returncode == 69, proc.stderr
        assert proc.stderr.decode().startswith("vmm: error: ") and proc.stderr.count(b"\n") == 1


def test_vmm_version_names_the_package_engine_and_artefacts(installed):
    proc = installed.run("vmm", "--version")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.decode().splitlines()
    assert lines[0].startswith(f"vmm (pyvmm) {paths.package_version()}, Python ")
    engine = "kvm (auto: KVM works)" if probe("kvm") is None else "unicorn (auto: fell back to unicorn"
    assert lines[1].startswith(f"engine: {engine}")
    data = installed_artefact(installed, "")
    assert lines[2] == f"artefacts: installed package, {data}"
    assert f"  kernel    {sha256sum(data / 'kernel.elf')}  {data / 'kernel.elf'}" in lines
    assert f"  firmware  {sha256sum(data / 'firmware.bin')}  {data / 'firmware.bin'}" in lines


def test_the_oci_runtime_and_container_rootfs_from_the_root_directory(installed, tmp_path):
    """vmm-oci (issue 19) comes with the wheel, and `vmm container rootfs` copies the packaged programs."""
    for command in ("vmm-oci", "vmm-oci-vm"):
        proc = installed.run(command, "--version")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.decode().startswith(f"{command} version {paths.package_version()}\nspec: ")
    rootfs = tmp_path / "rootfs"
    proc = installed.run("vmm", "container", "rootfs", str(rootfs), "hello")
    assert proc.returncode == 0, proc.stderr
    assert (rootfs / "bin" / "hello").read_bytes() == installed_artefact(installed, "programs/hello").read_bytes()


def test_import_vmm_finds_the_artefacts_through_importlib_resources(installed):
    script = ("import importlib.resources, vmm\n"
              "from vmm import Machine, MachineConfig, paths\n"
              "data = importlib.resources.files('vmm') / '_artefacts'\n"
              "assert paths.DEFAULT_KERNEL == data / 'kernel.elf', (paths.DEFAULT_KERNEL, data)\n"
              "config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path('hello')))\n"
              "with Machine(config) as vm:\n"
              "    result = vm.run()\n"
              "print(vmm.__file__, paths.SOURCE, result.serial.decode(), sep='|')\n")
    proc = installed.run("python", "-c", script)
    assert proc.returncode == 0, proc.stderr
    module, source, serial = proc.stdout.decode().split("|")
    assert module.startswith(str(installed.venv)) and source == "installed package"
    assert serial == "hello from ring 3\n\n"


def test_the_sample_project_under_the_installed_plugin(installed, tmp_path):
    project = copy_sample_project(tmp_path / "sample")
    proc = run_pytest(installed.bin / "python", project, "-n", "2")
    assert "vmm: artefacts: installed package" in proc.stdout, proc.stdout
    assert "plugins: xdist-" in proc.stdout and "pyvmm-" in proc.stdout
    sample_runs.check_sample_project_run(proc)
    assert set(available_engines())          # the check above judged at least one engine


def installed_artefact(installed, relative: str):
    site = next(installed.venv.glob("lib/python3*/site-packages"))
    return site / "vmm" / "_artefacts" / relative


def sha256sum(path) -> str:
    """The build id, computed by coreutils rather than by the code under test."""
    out = subprocess.run(["sha256sum", str(path)], capture_output=True, text=True, check=True).stdout
    return out.split()[0][:12]
