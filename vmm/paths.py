"""Where the guest artefacts are: the tiny kernel, the guest programs with their .expect files,
the firmware image. The Makefile builds them from source; they are never committed.

Two places, one layout seen from the rest of the package:
  - a source checkout (the package imported from the tree it lives in, as `make` installs it,
    editable): the freshly built guest/build/ and firmware/build/ win, so the edit-build-run
    loop needs no reinstall;
  - an installed wheel: the same files are package data under vmm/_artefacts/, found through
    importlib.resources (setup.py copies them there from a fresh build: see PACKAGED).
VMM_ARTEFACTS names another folder laid out like vmm/_artefacts/ (kernel.elf, firmware.bin,
programs/ with NAME and NAME.expect side by side).
"""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The package is a checkout's when the guest's sources sit beside it.
IN_CHECKOUT = (REPO_ROOT / "guest" / "Makefile").is_file()
ARTEFACTS_ENV = "VMM_ARTEFACTS"
PACKAGE_DATA = "_artefacts"         # inside the vmm package, in the wheel
DEFAULT_PROGRAM = "hello"

# What the wheel carries: (its path under vmm/_artefacts, the checkout path it is built at).
# Programs are added by the name of each guest/programs/NAME.expect (see packaged_files()).
PACKAGED = [
    ("kernel.elf", "guest/build/kernel.elf"),
    ("firmware.bin", "firmware/build/firmware.bin"),
]
PACKAGED_PROGRAMS = ("programs", "guest/build/programs", "guest/programs")   # wheel, built, .expect


def _package_data() -> Path:
    from importlib import resources       # only here: it costs start-up time in a checkout
    root = resources.files(__package__) / PACKAGE_DATA
    # pip installs wheels as plain files; a zipped package would need as_file() for every run.
    return Path(str(root))


if os.environ.get(ARTEFACTS_ENV):
    ARTEFACTS_ROOT, SOURCE = Path(os.environ[ARTEFACTS_ENV]), f"${ARTEFACTS_ENV}"
elif IN_CHECKOUT:
    ARTEFACTS_ROOT, SOURCE = REPO_ROOT, "source checkout"
else:
    ARTEFACTS_ROOT, SOURCE = _package_data(), "installed package"

if ARTEFACTS_ROOT is REPO_ROOT:
    GUEST_SOURCE = REPO_ROOT / "guest"
    GUEST_BUILD = GUEST_SOURCE / "build"
    DEFAULT_KERNEL = REPO_ROOT / PACKAGED[0][1]
    DEFAULT_FIRMWARE = REPO_ROOT / PACKAGED[1][1]
    PROGRAMS_BUILD = REPO_ROOT / PACKAGED_PROGRAMS[1]
    PROGRAMS_SOURCE = REPO_ROOT / PACKAGED_PROGRAMS[2]
else:
    GUEST_SOURCE = GUEST_BUILD = ARTEFACTS_ROOT
    DEFAULT_KERNEL = ARTEFACTS_ROOT / PACKAGED[0][0]
    DEFAULT_FIRMWARE = ARTEFACTS_ROOT / PACKAGED[1][0]
    PROGRAMS_BUILD = PROGRAMS_SOURCE = ARTEFACTS_ROOT / PACKAGED_PROGRAMS[0]


def program_path(name_or_path: str) -> Path:
    """A program given by name (`hello`) is looked up among the built guest programs."""
    if os.sep in name_or_path or os.path.exists(name_or_path):
        return Path(name_or_path)
    return PROGRAMS_BUILD / name_or_path


def packaged_files(repo: Path) -> list:
    """[(path under vmm/_artefacts, built file in the checkout `repo`)]: what the wheel holds.
    Every program with an .expect file goes in, with that file."""
    files = [(Path(inside), repo / built) for inside, built in PACKAGED]
    inside, built, source = PACKAGED_PROGRAMS
    for expect in sorted((repo / source).glob("*.expect")):
        files.append((Path(inside) / expect.name, expect))
        files.append((Path(inside) / expect.stem, repo / built / expect.stem))
    return files


def build_id(path) -> str:
    """A short identity of a built file: the first 12 hex digits of its SHA-256 (our guest
    images are linked without a GNU build-id note, and the firmware is a flat binary)."""
    import hashlib
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        return f"unreadable ({error.strerror or error})"
    return digest.hexdigest()[:12]


def package_version() -> str:
    try:
        from importlib.metadata import PackageNotFoundError, version
        return version("pyvmm")
    except PackageNotFoundError:        # imported from a tree that was never installed
        return "unknown (not installed)"


def describe() -> list:
    """Lines naming where the artefacts come from and the build id of each default one."""
    lines = [f"artefacts: {SOURCE}, {ARTEFACTS_ROOT}"]
    for label, path in (("kernel", DEFAULT_KERNEL), ("firmware", DEFAULT_FIRMWARE)):
        lines.append(f"  {label:<9} {build_id(path) if path.exists() else 'not built'}  {path}")
    count = len(list(PROGRAMS_SOURCE.glob("*.expect"))) if PROGRAMS_SOURCE.is_dir() else 0
    lines.append(f"  programs  {count} with .expect files  {PROGRAMS_BUILD}")
    return lines
