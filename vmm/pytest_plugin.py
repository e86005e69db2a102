"""The pytest plugin: guest programs as test items, VMs as fixtures.

Registered through the `pytest11` entry point `vmm` (pyproject.toml), so it is active wherever
the package is installed; `pytest -p no:vmm` turns it off.

- Collection: every NAME.expect file (the format in vmm/guest_tests.py) is one test item per
  engine, `NAME[kvm]` and `NAME[unicorn]`: the program NAME, found beside the .expect file or in
  a folder of the `vmm_program_path` ini option, booted with the tiny kernel; its serial output
  and exit status must be the file's. A failure shows a unified diff of the expected and actual
  output, both exit statuses, and the crash report if the guest crashed.
- `vm`: a factory. `vm("hello", **MachineConfig fields)` builds a Machine, runs it and returns
  its RunResult; `vm.machine(...)` builds one without running it. Every Machine it built is
  closed at teardown, whatever happened.
- `vm_engine`: a test that asks for it runs once per engine; an engine that cannot run here is
  skipped with its reason. `vm` boots on that engine.
- Options: --vmm-accel (all, or one engine), --vmm-timeout, --vmm-kernel.
- Markers: `vmm_requires(*features)` skips, with the engine's reason, where the engine lacks a
  feature (as `requires:` in a .expect file); every item on an engine is marked with its name
  (`-m unicorn` selects them).

Each item boots its own VM in the process that runs it, so pytest-xdist (`-n 2`) works.
Nothing here runs per VM exit; the VMM's modules are imported when first needed.
"""
import difflib
from pathlib import Path

import pytest

ENGINE_NAMES = ("kvm", "unicorn")       # the order of the items: vmm.machine.ENGINES
ACCEL_CHOICES = ("all", "auto") + ENGINE_NAMES
DEFAULT_ACCEL = "all"
PROGRAM_PATH_INI = "vmm_program_path"
_probed = {}


def pytest_addoption(parser):
    group = parser.getgroup("vmm", "pyvmm: guest programs and VMs")
    group.addoption("--vmm-accel", choices=ACCEL_CHOICES, default=DEFAULT_ACCEL,
                    help="engines for guest-program items and vm_engine: all (each, skipping those that cannot "
                         "run here, with the reason), auto (the one `vmm run` would take), kvm or unicorn "
                         "(default: %(default)s)")
    group.addoption("--vmm-timeout", type=float, default=None, metavar="SECONDS",
                    help="stop each VM after this long; the item fails (default: 120 for programs, none for vm)")
    group.addoption("--vmm-kernel", default=None, metavar="PATH",
                    help="kernel for guest-program items and the vm fixture (default: the tiny kernel, "
                         "built in a checkout or installed with the package)")
    parser.addini(PROGRAM_PATH_INI, type="paths", default=[],
                  help="folders holding the built guest programs of NAME.expect files that have no NAME beside them")


def pytest_configure(config):
    for name in ENGINE_NAMES:
        config.addinivalue_line("markers", f"{name}: the item runs on the {name} engine (added by the vmm plugin)")
    config.addinivalue_line("markers", "vmm_requires(*features): skip unless the engine has these features "
                                       "(vmm/engines/kvm_features.py), with the engine's reason")
    kernel = config.getoption("vmm_kernel")
    if kernel is not None and not Path(kernel).is_file():
        raise pytest.UsageError(f"--vmm-kernel {kernel}: no such file")
    timeout = config.getoption("vmm_timeout")
    if timeout is not None and timeout <= 0:
        raise pytest.UsageError(f"--vmm-timeout {timeout:g}: must be a positive number of seconds")


def pytest_report_header(config):
    from . import paths
    engines = ", ".join(f"{name} ({probe(name) or 'available'})" for name in selected_engines(config))
    return [f"vmm: pyvmm {paths.package_version()}; engines: {engines}", f"vmm: {paths.describe()[0]}"]


def probe(engine: str) -> str | None:
    """Why `engine` cannot run here, or None; asked once per process."""
    if engine not in _probed:
        from .machine import probe as probe_engine
        try:
            _probed[engine] = probe_engine(engine)
        except ImportError as error:
            _probed[engine] = f"engine {engine} not importable: {error}"
    return _probed[engine]


def selected_engines(config) -> list:
    return list(ENGINE_NAMES) if config.getoption("vmm_accel") == "all" else [default_engine(config)]


def default_engine(config) -> str:
    """The engine of a test that does not ask for vm_engine: --vmm-accel's, or auto's choice."""
    accel = config.getoption("vmm_accel")
    if accel in ENGINE_NAMES:
        return accel
    return "kvm" if probe("kvm") is None else "unicorn"


def engine_marks(engine: str) -> list:
    marks = [getattr(pytest.mark, engine)]
    reason = probe(engine)
    if reason is not None:
        marks.append(pytest.mark.skip(reason=f"{engine} unavailable: {reason}"))
    return marks


def kernel_path(config) -> str:
    from . import paths
    return config.getoption("vmm_kernel") or str(paths.DEFAULT_KERNEL)


# --- vm_engine and vm ---------------------------------------------------------------------

def pytest_generate_tests(metafunc):
    if "vm_engine" in metafunc.fixturenames:
        params = [pytest.param(engine, marks=engine_marks(engine), id=engine)
                  for engine in selected_engines(metafunc.config)]
        metafunc.parametrize("vm_engine", params, indirect=True)


@pytest.fixture
def vm_engine(request):
    """The engine this run of the test is on: "kvm" or "unicorn" (one run per engine)."""
    return request.param


class VmFactory:
    """Builds Machines from MachineConfig's keyword arguments, with the session's defaults
    (kernel, engine, timeout); closes every one of them at teardown."""

    def __init__(self, defaults: dict):
        self.defaults = defaults
        self.machines = []

    def machine(self, initrd=None, **fields):
        from . import paths
        from .config import MachineConfig
        from .machine import Machine
        fields = {**self.defaults, **fields}
        if initrd is not None:
            fields["initrd"] = str(paths.program_path(str(initrd)))
        machine = Machine(MachineConfig(**fields))
        self.machines.append(machine)
        return machine

    def __call__(self, initrd=None, **fields):
        """Build a Machine, run it, return its RunResult (the Machine stays open until teardown)."""
        return self.machine(initrd, **fields).run()

    def close(self) -> None:
        errors = []
        for machine in reversed(self.machines):
            try:
                machine.close()
            except Exception as error:      # close the others first, then report
                errors.append(error)
        self.machines.clear()
        if errors:
            raise errors[0]


@pytest.fixture
def vm(request):
    """vm(initrd=None, **MachineConfig fields) -> RunResult: build, run; closed at teardown.
    vm.machine(...) builds without running. Defaults: the tiny kernel (or --vmm-kernel), the
    test's vm_engine (else --vmm-accel, or auto), --vmm-timeout."""
    config = request.config
    accel = config.getoption("vmm_accel")
    if "vm_engine" in request.fixturenames:
        accel = request.getfixturevalue("vm_engine")
    defaults = {"kernel": kernel_path(config), "accel": accel if accel in ENGINE_NAMES else "auto",
                "timeout": config.getoption("vmm_timeout")}
    factory = VmFactory(defaults)
    try:
        yield factory
    finally:
        factory.close()


def pytest_collection_modifyitems(config, items):
    """vmm_requires(...) becomes a skip marker, so the report points at the test."""
    for item in items:
        features = [feature for mark in item.iter_markers("vmm_requires") for feature in mark.args]
        if not features:
            continue
        callspec = getattr(item, "callspec", None)
        engine = getattr(item, "vmm_engine", None) or (callspec.params.get("vm_engine") if callspec else None) \
            or default_engine(config)
        skip = requirement_skip(engine, features)
        if skip:
            item.add_marker(pytest.mark.skip(reason=skip))


def requirement_skip(engine: str, features) -> str | None:
    """Why a test needing `features` cannot run on `engine`, or None."""
    from .engines.kvm_features import FEATURES
    from .machine import engine_class
    unknown = [feature for feature in features if feature not in FEATURES]
    if unknown:
        raise pytest.UsageError(f"vmm_requires: unknown feature {unknown[0]!r}; known: {', '.join(FEATURES)}")
    reason = probe(engine)
    if reason is not None:
        return f"{engine} unavailable: {reason}"
    missing = engine_class(engine).missing_features()
    return next((f"{engine} lacks {feature}: {missing[feature]}" for feature in features if feature in missing), None)


# --- guest programs -----------------------------------------------------------------------

def pytest_collect_file(file_path, parent):
    if file_path.suffix == ".expect":
        return ExpectFile.from_parent(parent, path=file_path)
    return None


class ExpectFile(pytest.File):
    """NAME.expect: one ProgramItem per selected engine."""

    def collect(self):
        from .errors import VmmError
        from .guest_tests import missing_requirement, parse_expectation, resolve_symbols
        name = self.path.stem
        program = find_program(self.path, self.config)
        try:
            expect = parse_expectation(name, self.path.read_text())
            if program is not None:             # {symbol:NAME}: an address looked up in the program
                expect.output = resolve_symbols(program, expect.output)
        except (VmmError, ValueError, UnicodeDecodeError) as error:
            raise self.CollectError(f"{self.path}: {error}") from None    # one line, no traceback
        for engine in selected_engines(self.config):
            item = ProgramItem.from_parent(self, name=f"{name}[{engine}]", expect=expect, program=program,
                                           engine=engine)
            for mark in engine_marks(engine):
                item.add_marker(mark)
            lacking = missing_requirement(expect, engine) if probe(engine) is None else None
            if lacking:
                item.add_marker(pytest.mark.skip(reason=f"{engine} lacks what {self.path.name} requires: {lacking}"))
            yield item


def find_program(expect_path: Path, config) -> Path | None:
    """The built program of NAME.expect: NAME beside it, else in a `vmm_program_path` folder."""
    candidates = [expect_path.with_suffix("")] + [Path(folder) / expect_path.stem
                                                 for folder in config.getini(PROGRAM_PATH_INI)]
    return next((path for path in candidates if path.is_file()), None)


class ProgramFailed(Exception):
    """The run did not match the .expect file; `report` is what pytest shows."""

    def __init__(self, report: str):
        super().__init__(report)
        self.report = report


class ProgramItem(pytest.Item):
    def __init__(self, *, expect, program, engine, **kwargs):
        super().__init__(**kwargs)
        self.expect, self.program, self.vmm_engine = expect, program, engine

    def runtest(self):
        from .guest_tests import DEFAULT_TIMEOUT, run_expectation
        if self.program is None:
            folders = [str(self.path.parent)] + [str(f) for f in self.config.getini(PROGRAM_PATH_INI)]
            raise ProgramFailed(f"program {self.expect.name} not found (looked in {', '.join(folders)}): "
                                "build it, or name its folder in the vmm_program_path ini option")
        run = run_expectation(self.expect, str(self.program), self.vmm_engine, kernel=kernel_path(self.config),
                              timeout=self.config.getoption("vmm_timeout") or DEFAULT_TIMEOUT)
        if not run.passed:
            raise ProgramFailed(failure_report(self.expect, run, self.path.name))

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, ProgramFailed):
            return excinfo.value.report
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"guest program {self.name}"


def failure_report(expect, run, expect_name: str) -> str:
    """What failed, for a human: statuses, a unified diff of the serial output, the crash report."""
    lines = [f"guest program {expect.name} on {run.engine}: {run.reason}" + (f" ({run.detail})" if run.detail else "")]
    status = "matches" if run.status == expect.status else "DIFFERS"
    lines.append(f"exit status: {run.status}, expected {expect.status} ({status})")
    if run.serial != expect.output:
        lines.append("serial output differs (- expected, + actual):")
        lines += output_diff(expect.output, run.serial, expect_name, f"{run.engine} serial output")
    else:
        lines.append("serial output matches")
    lines += [problem for problem in run.problems if not problem.startswith(("exit status ", "output "))]
    if run.cpu_report:
        lines += ["crash report:", run.cpu_report.rstrip("\n")]
    return "\n".join(lines)


def output_diff(expected: bytes, actual: bytes, expected_name: str, actual_name: str) -> list:
    def text_lines(data: bytes) -> list:
        lines = data.decode("utf-8", "backslashreplace").splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n\\ no newline at the end\n"
        return lines
    diff = difflib.unified_diff(text_lines(expected), text_lines(actual), expected_name, actual_name, n=3)
    return [line.rstrip("\n") for line in diff]
