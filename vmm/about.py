"""What `vmm --version` and the `--stats` header say: the package version, the engine, and the
build ids of the guest artefacts (vmm/paths.py says where those come from)."""
import platform

from . import paths


def engine_line(accel: str) -> str:
    from .errors import VmmError
    from .machine import choose_engine
    try:
        engine, note = choose_engine(accel)
    except VmmError as error:
        return f"engine: none can run here ({error})"
    return f"engine: {engine.name} ({note})"


def version_text(accel: str) -> str:
    lines = [f"vmm (pyvmm) {paths.package_version()}, Python {platform.python_version()}", engine_line(accel)]
    return "\n".join(lines + paths.describe())


def run_ids(config) -> str:
    """`kernel ID, program ID[, firmware ID]` for the files a run booted."""
    files = [("kernel", config.kernel), ("initrd", config.initrd), ("firmware", config.firmware)]
    return ", ".join(f"{label} {paths.build_id(path)}" for label, path in files if path)
