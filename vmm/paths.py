"""Where the guest artefacts are: the tiny kernel, the guest programs with their .expect files,
the firmware image. The Makefile builds them from source; they are never committed.

Two places, one layout seen from the rest of the package:
  - a source checkout (the package imported from the tree it lives in, as `make` installs it,
    editable): the freshly built guest/build/ and firmware/build/ win, so the edit-build-run
    loop needs no reinstall;
  - an installed wheel: the same files are package data under vmm/_artefacts/ (setup.py copies
    them there from a fresh build: see PACKAGED), where importlib.resources finds them.
VMM_ARTEFACTS names another folder laid out like vmm/_artefacts/ (kernel.elf, firmware.bin,
programs/ with NAME and NAME.expect side by side).

The names below (REPO_ROOT, DEFAULT_KERNEL, ...) are pathlib.Path objects, made on first use:
pathlib costs `vmm run` about 8 ms of start-up, so the run path asks for plain strings with
location() and program_file() instead.
"""
import os

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

_PACKAGE_DIR = os.path.dirname(os.path.realpath(__file__))
_REPO_ROOT = os.path.dirname(_PACKAGE_DIR)
# The package is a checkout's when the guest's sources sit beside it.
IN_CHECKOUT = os.path.isfile(os.path.join(_REPO_ROOT, "guest", "Makefile"))


def _package_data() -> str:
    """The wheel's vmm/_artefacts. pip installs a wheel as plain files, and there this folder
    is the one importlib.resources.files("vmm") / "_artefacts" names (tests/test_wheel.py
    checks that they agree); importing importlib.resources costs a `vmm run` 20-100 ms here
    (it loads pathlib, re, typing, tempfile...), so it is asked only when the package was
    loaded some other way."""
    plain = os.path.join(_PACKAGE_DIR, PACKAGE_DATA)
    if os.path.isdir(plain):
        return plain
    from importlib import resources
    return str(resources.files(__package__) / PACKAGE_DATA)


if os.environ.get(ARTEFACTS_ENV):
    _ARTEFACTS_ROOT, SOURCE = os.environ[ARTEFACTS_ENV], f"${ARTEFACTS_ENV}"
elif IN_CHECKOUT:
    _ARTEFACTS_ROOT, SOURCE = _REPO_ROOT, "source checkout"
else:
    _ARTEFACTS_ROOT, SOURCE = _package_data(), "installed package"

if SOURCE == "source checkout":
    _GUEST_SOURCE = os.path.join(_REPO_ROOT, "guest")
    _LOCATIONS = {
        "GUEST_SOURCE": _GUEST_SOURCE,
        "GUEST_BUILD": os.path.join(_GUEST_SOURCE, "build"),
        "DEFAULT_KERNEL": os.path.join(_REPO_ROOT, PACKAGED[0][1]),
        "DEFAULT_FIRMWARE": os.path.join(_REPO_ROOT, PACKAGED[1][1]),
        "PROGRAMS_BUILD": os.path.join(_REPO_ROOT, PACKAGED_PROGRAMS[1]),
        "PROGRAMS_SOURCE": os.path.join(_REPO_ROOT, PACKAGED_PROGRAMS[2]),
        # Programs of the test root file system (glibc and musl builds, busybox): their
        # .expect files name the root file system, a folder under GUEST_BUILD.
        "ROOTFS_PROGRAMS_SOURCE": os.path.join(_GUEST_SOURCE, "rootfs", "programs"),
    }
else:
    _PROGRAMS = os.path.join(_ARTEFACTS_ROOT, PACKAGED_PROGRAMS[0])
    _LOCATIONS = {
        "GUEST_SOURCE": _ARTEFACTS_ROOT,
        "GUEST_BUILD": _ARTEFACTS_ROOT,
        "DEFAULT_KERNEL": os.path.join(_ARTEFACTS_ROOT, PACKAGED[0][0]),
        "DEFAULT_FIRMWARE": os.path.join(_ARTEFACTS_ROOT, PACKAGED[1][0]),
        "PROGRAMS_BUILD": _PROGRAMS,
        "PROGRAMS_SOURCE": _PROGRAMS,
        "ROOTFS_PROGRAMS_SOURCE": os.path.join(_ARTEFACTS_ROOT, "rootfs-programs"),   # not packaged
    }
_LOCATIONS.update(REPO_ROOT=_REPO_ROOT, ARTEFACTS_ROOT=_ARTEFACTS_ROOT)


def location(name: str) -> str:
    """One of the locations above as a string: location("DEFAULT_KERNEL")."""
    return _LOCATIONS[name]


def program_file(name_or_path: str) -> str:
    """A program given by name (`hello`) is looked up among the built guest programs."""
    if os.sep in name_or_path or os.path.exists(name_or_path):
        return name_or_path
    return os.path.join(_LOCATIONS["PROGRAMS_BUILD"], name_or_path)


def program_path(name_or_path: str):
    """program_file() as a pathlib.Path."""
    from pathlib import Path
    return Path(program_file(name_or_path))


def __getattr__(name):
    if name == "EXPECT_DIRECTORIES":        # where .expect files are: guest programs, then rootfs ones
        from pathlib import Path
        return tuple(Path(_LOCATIONS[key]) for key in ("PROGRAMS_SOURCE", "ROOTFS_PROGRAMS_SOURCE"))
    if name in _LOCATIONS:
        from pathlib import Path
        value = Path(_LOCATIONS[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def packaged_files(repo) -> list:
    """[(path under vmm/_artefacts, built file in the checkout `repo`)]: what the wheel holds.
    Every program with an .expect file goes in, with that file."""
    from pathlib import Path
    repo = Path(repo)
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
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pyvmm")
    except PackageNotFoundError:        # imported from a tree that was never installed
        return "unknown (not installed)"


def describe() -> list:
    """Lines naming where the artefacts come from and the build id of each default one."""
    lines = [f"artefacts: {SOURCE}, {_ARTEFACTS_ROOT}"]
    for label, name in (("kernel", "DEFAULT_KERNEL"), ("firmware", "DEFAULT_FIRMWARE")):
        path = _LOCATIONS[name]
        lines.append(f"  {label:<9} {build_id(path) if os.path.isfile(path) else 'not built'}  {path}")
    programs, source = _LOCATIONS["PROGRAMS_BUILD"], _LOCATIONS["PROGRAMS_SOURCE"]
    count = sum(name.endswith(".expect") for name in os.listdir(source)) if os.path.isdir(source) else 0
    lines.append(f"  programs  {count} with .expect files  {programs}")
    return lines
