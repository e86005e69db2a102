"""Shared test helpers: which engines can run here, the built guest kernel, QEMU, KVM.

Markers for the KVM engine's tests (`make test-nested` runs `pytest -m kvm` in a nested
kvm_amd, a KVM with hardware semantics; on a host with VT-x or AMD-V `make test` runs them all):
  - kvm: the test drives the KVM engine. Added by itself to the kvm param of engine_params()
    and to every test that uses the requires_kvm fixture or one of the two markers below;
    any other test joins the nested selection with `@pytest.mark.kvm`.
  - kvm_feature(*names): needs KVM with these features (vmm/engines/kvm_features.py); skipped,
    with the reason, where KVM is missing or lacks one (on kvm_pvm, say).
  - kvm_lacks(name): exercises the workaround for a KVM without `name` (kvm_pvm's); skipped
    where KVM has it.
And `host_speed`: the test asserts the host's CPU cost or latency, which means nothing where the
host CPU itself is emulated (QEMU's TCG, as in the nested run); skipped there.

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
# A project of its own, with a program that fails on purpose: test_pytest_plugin.py and
# test_wheel.py run it in a copy and check its report.
collect_ignore = ["sample_project"]
KVM_MARKERS = ("kvm_feature", "kvm_lacks")
EXPECT_ENV = "VMM_EXPECT_ENGINES"


def expected_engines() -> list:
    """The engines VMM_EXPECT_ENGINES lists (comma-separated; empty: none)."""
    names = [name.strip() for name in os.environ.get(EXPECT_ENV, "").split(",") if name.strip()]
    unknown = [name for name in names if name not in ENGINES]
    if unknown:
        raise pytest.UsageError(f"{EXPECT_ENV} names unknown engines {unknown}; the engines are {ENGINES}")
    return names


def pytest_configure(config):
    config.addinivalue_line("markers", "kvm: drives the KVM engine (the selection make test-nested runs)")
    config.addinivalue_line("markers", "kvm_feature(*names): needs a KVM with these features (skips without)")
    config.addinivalue_line("markers", "kvm_lacks(name): tests a workaround for a KVM without `name`")
    config.addinivalue_line("markers", "host_speed: asserts host CPU cost or latency (skipped on an emulated CPU)")
    # A run that expects an engine this machine cannot give fails at once, saying why.
    missing = {name: _probe(name) for name in expected_engines()}
    missing = {name: reason for name, reason in missing.items() if reason is not None}
    if missing:
        raise pytest.UsageError(f"{EXPECT_ENV}={os.environ[EXPECT_ENV]}, but "
                                + "; ".join(f"{name} cannot run here: {reason}" for name, reason in missing.items()))


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "requires_kvm" in getattr(item, "fixturenames", ()) or any(item.get_closest_marker(m) for m in KVM_MARKERS):
            item.add_marker(pytest.mark.kvm)


def pytest_runtest_setup(item):
    if item.get_closest_marker("host_speed") and emulated_host_cpu():
        pytest.skip(f"measures the host's speed, and this host's CPU is emulated ({emulated_host_cpu()})")
    marks = [mark for name in KVM_MARKERS for mark in item.iter_markers(name)]
    if not marks:
        return
    reason = _probe("kvm")
    if reason is not None:
        pytest.skip(f"KVM unavailable: {reason}")
    skip = kvm_feature_skip(_missing_kvm_features(), marks)
    if skip:
        pytest.skip(skip)


def emulated_host_cpu(cpuinfo="/proc/cpuinfo") -> str | None:
    """The CPU's model name if it says QEMU's TCG emulates it (QEMU's own models do), else None."""
    try:
        with open(cpuinfo) as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return None
    return model if "TCG" in model else None


def _missing_kvm_features() -> dict:
    from vmm.engines.kvm import KvmEngine
    return KvmEngine.missing_features()


def kvm_feature_skip(missing: dict, marks) -> str | None:
    """Why a test with these kvm_feature/kvm_lacks marks cannot run on a KVM that lacks
    `missing` ({feature: reason}), or None if it can."""
    for mark in marks:
        for feature in mark.args:
            if mark.name == "kvm_feature" and feature in missing:
                return f"needs KVM with {feature}: {missing[feature]}"
            if mark.name == "kvm_lacks" and feature not in missing:
                return f"tests how the VMM copes with a KVM without {feature}, and this KVM has it"
    return None


def _probe(name: str) -> str | None:
    """None if engine `name` can run here, else why not (probe() in vmm/machine.py)."""
    return probe(name)


def engine_params(kvm_features=()):
    """One pytest param per engine, skipped (with the reason) where it cannot run. The kvm
    param is marked `kvm`, and with kvm_features `kvm_feature(*kvm_features)`."""
    params = []
    for name in ENGINES:
        reason = _probe(name)
        marks = [pytest.mark.skip(reason=f"{name} unavailable: {reason}")] if reason else []
        if name == "kvm":
            marks.append(pytest.mark.kvm)
            if kvm_features:
                marks.append(pytest.mark.kvm_feature(*kvm_features))
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


HOST_STATE_LOCK = "/run/pyvmm-tests-host-state.lock"


@pytest.fixture(scope="module")
def host_state_to_ourselves():
    """Hold, for a whole test module, the host-wide state its leftover checks read: the mount
    table, podman's containers, /run/vmm-oci, the cgroup tree. Two suites running at once (two
    checkouts on one machine) would otherwise see each other's containers as leftovers. A
    POSIX lock through os.lockf, released when the module ends or the process dies."""
    try:
        handle = open(HOST_STATE_LOCK, "a")
    except OSError:                 # a read-only /run (the nested run's 9p root): nobody to share with
        yield
        return
    with handle:
        os.lockf(handle.fileno(), os.F_LOCK, 0)        # waits for the other suite's module
        yield
