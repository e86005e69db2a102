"""Packaging steps pyproject.toml cannot state: the wheel carries the guest.

- build_py builds the guest kernel, the guest programs and the firmware from source with the
  project's Makefiles (gcc, binutils, make), then copies them into the package as
  vmm/_artefacts/ (the list is vmm/paths.py's PACKAGED). An editable install skips this: a
  checkout uses guest/build and firmware/build in place.
- bdist_wheel tags the wheel for x86-64 Linux: the package drives Linux KVM on x86 and carries
  x86-64 guest images, so it is not a pure-Python wheel whatever its code is.
"""
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Distribution, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from vmm.paths import PACKAGE_DATA, packaged_files  # noqa: E402  (stdlib-only module)

WHEEL_PLATFORM = "linux_x86_64"
# The parts of the guest a user needs by default (guest/Makefile's `linux` target fetches
# Debian's kernel for the test suite; that stays out of the wheel).
GUEST_TARGETS = (["-C", "guest", "kernel", "programs"], ["-C", "firmware"])


def build_guest() -> None:
    for tool in ("make", "gcc", "as", "ld", "objcopy"):
        if shutil.which(tool) is None:
            sys.exit(f"error: building pyvmm's wheel needs {tool}: the guest kernel, programs and firmware "
                     "are built from source (apt-get install gcc binutils make)")
    for target in GUEST_TARGETS:
        subprocess.run(["make", "--no-print-directory", *target, f"PYTHON={sys.executable}"], cwd=ROOT, check=True)


class BuildPyWithGuest(build_py):
    def run(self):
        super().run()
        if self.editable_mode:
            return
        build_guest()
        destination = Path(self.build_lib) / "vmm" / PACKAGE_DATA
        for inside, built in packaged_files(ROOT):
            if not built.is_file():
                sys.exit(f"error: {built} was not built: the wheel would lack {inside}")
            target = destination / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(built, target)
            print(f"copying {built.relative_to(ROOT)} -> {target}")


class PlatformDistribution(Distribution):
    """Installed as platform-specific (platlib), as a package with binaries is."""
    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    def get_tag(self):
        if sys.platform != "linux" or platform.machine() != "x86_64":
            sys.exit("error: pyvmm's wheel is built on x86-64 Linux only (KVM on x86, x86-64 guest images)")
        return "py3", "none", WHEEL_PLATFORM


os.chdir(ROOT)
setup(distclass=PlatformDistribution, cmdclass={"build_py": BuildPyWithGuest, "bdist_wheel": PlatformWheel})
