"""Where the built guest artefacts live (built by the Makefile, never committed).

VMM_GUEST_BUILD overrides the folder, for an installed package used outside the checkout.

The names below (REPO_ROOT, DEFAULT_KERNEL, ...) are pathlib.Path objects, made on first use:
pathlib costs `vmm run` about 8 ms of start-up, so the run path asks for plain strings with
location() and program_file() instead.
"""
import os

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
_GUEST_SOURCE = os.path.join(_REPO_ROOT, "guest")
_GUEST_BUILD = os.environ.get("VMM_GUEST_BUILD", os.path.join(_GUEST_SOURCE, "build"))
_LOCATIONS = {
    "REPO_ROOT": _REPO_ROOT,
    "GUEST_SOURCE": _GUEST_SOURCE,
    "GUEST_BUILD": _GUEST_BUILD,
    "DEFAULT_KERNEL": os.path.join(_GUEST_BUILD, "kernel.elf"),
    "PROGRAMS_BUILD": os.path.join(_GUEST_BUILD, "programs"),
    "PROGRAMS_SOURCE": os.path.join(_GUEST_SOURCE, "programs"),
    "DEFAULT_FIRMWARE": os.path.join(_REPO_ROOT, "firmware", "build", "firmware.bin"),
}
DEFAULT_PROGRAM = "hello"


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
    if name in _LOCATIONS:
        from pathlib import Path
        value = Path(_LOCATIONS[name])
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
