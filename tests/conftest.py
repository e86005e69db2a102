"""Shared test helpers: which engines can run here, the built guest kernel, QEMU, KVM.

An engine that cannot run here makes its tests skip, with the reason, unless the run says it
expects the engine: VMM_EXPECT_ENGINES=kvm,unicorn (CI sets it, .ci/run) turns a missing
expected engine into a failed run before any test starts. An engine whose own module does
not import is a bug, never a reason to skip: the ImportError goes up.
"""
import os
import shutil

import pytest

from vmm import paths
from vmm.machine import ENGINES as _ENGINE_MODULES
from vmm.machine import probe

ENGINES = list(_ENGINE_MODULES)          # "kvm", "unicorn"
EXPECT_ENV = "VMM_EXPECT_ENGINES"


def expected_engines() -> list:
    """The engines VMM_EXPECT_ENGINES lists (comma-separated; empty: none)."""
    names = [name.strip() for name in os.environ.get(EXPECT_ENV, "").split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINES]
    if unknown:
        raise pytest.UsageError(f"{EXPECT_ENV} names unknown engines {unknown}; the engines are {ENGINES}")
    return names


def _probe(name: str) -> str | None:
    """None if engine `name` can run here, else why not (probe() in vmm/machine.py)."""
    return probe(name)


def pytest_configure(config):
    """A run that expects an engine this machine cannot give fails at once, saying why."""
    missing = {name: _probe(name) for name in expected_engines()}
    missing = {name: reason for name, reason in missing.items() if reason is not None}
    if missing:
        raise pytest.UsageError(f"{EXPECT_ENV}={os.environ[EXPECT_ENV]}, but "
                                + "; ".join(f"{name} cannot run here: {reason}" for name, reason in missing.items()))


def engine_params():
    """One pytest param per engine, skipped (with the reason) where it cannot run."""
    params = []
    for name in ENGINES:
        reason = _probe(name)
        marks = [pytest.mark.skip(reason=f"{name} unavailable: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


def skip_unless_engine(name: str) -> None:
    """For a module or test about one engine: skip, with the reason, where it cannot run."""
    reason = _probe(name)
    if reason is not None:
        pytest.skip(f"{name} unavailable: {reason}", allow_module_level=True)


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
