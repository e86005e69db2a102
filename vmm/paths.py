"""Where the built guest artefacts live (built by the Makefile, never committed).

VMM_GUEST_BUILD overrides the folder, for an installed package used outside the checkout.
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GUEST_SOURCE = REPO_ROOT / "guest"
GUEST_BUILD = Path(os.environ.get("VMM_GUEST_BUILD", GUEST_SOURCE / "build"))
DEFAULT_KERNEL = GUEST_BUILD / "kernel.elf"
PROGRAMS_BUILD = GUEST_BUILD / "programs"
PROGRAMS_SOURCE = GUEST_SOURCE / "programs"
# Programs of the test root file system (built with glibc and musl, busybox): their .expect
# files name the root file system, a directory under GUEST_BUILD.
ROOTFS_PROGRAMS_SOURCE = GUEST_SOURCE / "rootfs" / "programs"
EXPECT_DIRECTORIES = (PROGRAMS_SOURCE, ROOTFS_PROGRAMS_SOURCE)
DEFAULT_PROGRAM = "hello"
DEFAULT_FIRMWARE = REPO_ROOT / "firmware" / "build" / "firmware.bin"


def program_path(name_or_path: str) -> Path:
    """A program given by name (`hello`) is looked up among the built guest programs."""
    if os.sep in name_or_path or os.path.exists(name_or_path):
        return Path(name_or_path)
    return PROGRAMS_BUILD / name_or_path
