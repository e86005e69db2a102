"""Shared test helpers: which engines can run here, the built guest kernel, QEMU, KVM."""
import shutil

import pytest

from vmm import paths
from vmm.machine import ENGINES as _ENGINE_MODULES
from vmm.machine import probe

ENGINES = list(_ENGINE_MODULES)          # "kvm", "unicorn"


def _probe(name: str) -> str | None:
    try:
        return probe(name)
    except ImportError as error:         # an engine module not written yet
        return f"engine {name} not importable: {error}"


def engine_params():
    """One pytest param per engine, skipped (with the reason) where it cannot run."""
    params = []
    for name in ENGINES:
        reason = _probe(name)
        marks = [pytest.mark.skip(reason=f"{name} unavailable: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture
def kernel_path():
    """The built guest kernel. Missing is a failure, not a skip: `make test` builds it, and
    a suite that silently skipped every guest test would prove nothing."""
    if not paths.DEFAULT_KERNEL.exists():
        pytest.fail(f"guest kernel not built ({paths.DEFAULT_KERNEL}): run `make test`, which builds it")
    return str(paths.DEFAULT_KERNEL)


@pytest.fixture
def qemu():
    """qemu-system-x86_64 for the oracle tests, or a skip (`make peers` installs it)."""
    path = shutil.which("qemu-system-x86_64")
    if path is None:
        pytest.skip("qemu-system-x86_64 not installed (run `make peers`)")
    return path


@pytest.fixture
def requires_kvm():
    """Skip the test, with the reason, unless /dev/kvm opens and can run a VM here
    (KvmEngine.probe(); VMM_NO_KVM=1 hides KVM as on a host without it)."""
    reason = _probe("kvm")
    if reason is not None:
        pytest.skip(f"KVM unavailable: {reason}")
