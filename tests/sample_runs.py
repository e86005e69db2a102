"""Running pytest with the vmm plugin in a child process, on a copy of tests/sample_project or
on a folder a test makes, and reading what it reported (shared by test_pytest_plugin.py, which
uses the checkout's plugin, and test_wheel.py, which uses the installed wheel's)."""
import os
import re
import shutil
import subprocess
from pathlib import Path

from vmm.engines.kvm_features import USER_CPUID
from vmm.machine import ENGINES, engine_class, probe

SAMPLE_PROJECT = Path(__file__).resolve().parent / "sample_project"
PYTEST_TIMEOUT = 600
# The child must not see this run's plugins or options: PYTEST_ADDOPTS, say.
CLEARED_ENV = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONPATH")


def copy_sample_project(destination: Path) -> Path:
    """A copy of the sample project with its two programs built by its own Makefile."""
    shutil.copytree(SAMPLE_PROJECT, destination, ignore=shutil.ignore_patterns("greet", "count", "__pycache__"))
    subprocess.run(["make", "-s", "-C", str(destination)], check=True, capture_output=True)
    return destination


def run_pytest(python, cwd, *args, env=None) -> subprocess.CompletedProcess:
    child_env = {k: v for k, v in os.environ.items() if k not in CLEARED_ENV}
    child_env.update(env or {})
    return subprocess.run([str(python), "-m", "pytest", "-rA", "-p", "no:cacheprovider", *args], cwd=cwd,
                          env=child_env, capture_output=True, text=True, timeout=PYTEST_TIMEOUT)


def outcomes(output: str) -> dict:
    """{nodeid: PASSED|FAILED|SKIPPED|ERROR} from the -rA short summary."""
    found = {}
    for line in output.splitlines():
        match = re.match(r"(PASSED|FAILED|ERROR) (\S+)", line)
        if match:
            found[match.group(2)] = match.group(1)
    return found


def skipped_reasons(output: str) -> list:
    return re.findall(r"^SKIPPED \[\d+\] (.*)$", output, re.MULTILINE)


def available_engines() -> list:
    return [engine for engine in ENGINES if probe(engine) is None]


def check_sample_project_run(proc: subprocess.CompletedProcess) -> None:
    """What the sample project's run must report on this machine: greet passes and count fails
    on every engine that can run here, with count's statuses and a unified diff; the other
    engine's items are skipped with the reason; the tests of test_sample.py pass."""
    output = proc.stdout + proc.stderr
    engines = available_engines()
    assert engines, "no engine can run here"
    assert proc.returncode == 1, output          # pytest's status: some tests failed
    results = outcomes(output)
    for engine in engines:
        assert results.get(f"programs/greet.expect::greet[{engine}]") == "PASSED", output
        assert results.get(f"programs/count.expect::count[{engine}]") == "FAILED", output
        assert results.get(f"test_sample.py::test_greet_prints_its_line[{engine}]") == "PASSED", output
        cpuid = results.get(f"test_sample.py::test_cpuid_from_ring_3_is_the_vmms[{engine}]")
        lacks = engine_class(engine).missing_features().get(USER_CPUID)
        assert cpuid == (None if lacks else "PASSED"), output
        if lacks:
            assert any(f"{engine} lacks user-cpuid: {lacks}" in line for line in skipped_reasons(output)), output
        # The failure's report: the statuses, then the unified diff of the serial output.
        report = section(output, f"guest program count[{engine}]")
        assert f"guest program count on {engine}: debug-exit" in report, report
        assert "exit status: 3, expected 0 (DIFFERS)" in report, report
        assert "--- count.expect\n" in report and f"+++ {engine} serial output\n" in report, report
        assert "\n one\n two\n three\n-four\n" in report, report
    for engine in set(ENGINES) - set(engines):
        assert f"programs/greet.expect: {engine} unavailable: {probe(engine)}" in skipped_reasons(output), output
    assert results.get("test_sample.py::test_the_tiny_kernel_passes_arguments") == "PASSED", output


def section(output: str, title: str) -> str:
    """The text of one failure's report: from its `____ title ____` line to the next."""
    match = re.search(r"^_+ " + re.escape(title) + r" _+$\n(.*?)(?=^_{3,} |^=+ )", output, re.MULTILINE | re.DOTALL)
    assert match, f"no report titled {title!r} in:\n{output}"
    return match.group(1)
