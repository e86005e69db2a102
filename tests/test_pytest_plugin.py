"""The pytest plugin (vmm/pytest_plugin.py), as this checkout installs it (the `pytest11` entry
point of the editable install): each test runs pytest in a child process on a folder of its own.
test_wheel.py runs the sample project again under the installed wheel's plugin."""
import shutil
import sys
import textwrap

import pytest

import sample_runs
from elf_builder import elf64, pvh_note
from sample_runs import available_engines, copy_sample_project, outcomes, run_pytest, section, skipped_reasons
from vmm import paths
from vmm.machine import ENGINES, probe

PYTHON = sys.executable


def program_folder(tmp_path, *names, expect_text=None):
    """A folder with NAME.expect (the project's, or `expect_text`) and the built NAME beside it."""
    for name in names:
        text = expect_text if expect_text is not None else (paths.PROGRAMS_SOURCE / f"{name}.expect").read_text()
        (tmp_path / f"{name}.expect").write_text(text)
        shutil.copy(paths.PROGRAMS_BUILD / name, tmp_path / name)
    return tmp_path


def test_the_sample_project_passes_and_fails_as_it_should_under_xdist(tmp_path):
    project = copy_sample_project(tmp_path / "sample")
    proc = run_pytest(PYTHON, project, "-n", "2")
    assert "2 workers" in proc.stdout, proc.stdout
    sample_runs.check_sample_project_run(proc)


def test_each_expect_file_is_one_item_per_engine(tmp_path):
    folder = program_folder(tmp_path, "hello", "args")
    proc = run_pytest(PYTHON, folder, "--collect-only", "-q")
    listed = [line for line in proc.stdout.splitlines() if "::" in line]
    assert listed == [f"{name}.expect::{name}[{engine}]" for name in ("args", "hello") for engine in ENGINES]
    only = run_pytest(PYTHON, folder, "--collect-only", "-q", "--vmm-accel", "unicorn")
    assert [line for line in only.stdout.splitlines() if "::" in line] == ["args.expect::args[unicorn]",
                                                                          "hello.expect::hello[unicorn]"]


def test_the_items_pass_on_every_engine_available_and_skip_the_others_saying_why(tmp_path):
    folder = program_folder(tmp_path, "hello", "args")
    proc = run_pytest(PYTHON, folder)
    assert proc.returncode == 0, proc.stdout
    results = outcomes(proc.stdout)
    for engine in ENGINES:
        for name in ("hello", "args"):
            if engine in available_engines():
                assert results[f"{name}.expect::{name}[{engine}]"] == "PASSED"
            else:
                assert f"{name}.expect: {engine} unavailable: {probe(engine)}" in skipped_reasons(proc.stdout)


def test_engine_markers_select_the_items_of_one_engine(tmp_path):
    folder = program_folder(tmp_path, "hello")
    proc = run_pytest(PYTHON, folder, "--collect-only", "-q", "-m", "unicorn")
    assert [line for line in proc.stdout.splitlines() if "::" in line] == ["hello.expect::hello[unicorn]"]


def test_no_vmm_turns_the_plugin_off(tmp_path):
    folder = program_folder(tmp_path, "hello")
    proc = run_pytest(PYTHON, folder, "-p", "no:vmm", "--collect-only", "-q")
    assert "hello.expect" not in proc.stdout
    assert proc.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, proc.stdout


def test_a_crash_shows_the_crash_report(tmp_path):
    """A kernel that executes ud2 with no IDT: the guest triple-faults on every engine."""
    folder = program_folder(tmp_path, "hello")
    kernel = tmp_path / "crash.elf"
    kernel.write_bytes(elf64([(0x100000, b"\x0f\x0b", 2)], notes=pvh_note(0x100000)))
    proc = run_pytest(PYTHON, folder, "--vmm-kernel", str(kernel))
    assert proc.returncode == pytest.ExitCode.TESTS_FAILED, proc.stdout
    for engine in available_engines():
        report = section(proc.stdout, f"guest program hello[{engine}]")
        assert f"guest program hello on {engine}: shutdown (triple fault" in report, report
        assert "exit status: 71, expected 0 (DIFFERS)" in report
        assert "-hello from ring 3\n" in report
        assert "crash report:\nmode: protected (32-bit)   rip=0x0000000000100000" in report, report


def test_vmm_timeout_stops_a_guest_that_waits_forever(tmp_path):
    """echo waits for a line on its stdin; this .expect gives it none."""
    folder = program_folder(tmp_path, "echo", expect_text="status: 0\n---\necho: hello vm\n")
    proc = run_pytest(PYTHON, folder, "--vmm-timeout", "0.5", "--vmm-accel", "unicorn")
    report = section(proc.stdout, "guest program echo[unicorn]")
    assert "guest program echo on unicorn: timeout" in report, report
    assert "exit status: 72, expected 0 (DIFFERS)" in report
    assert "crash report:\nmode: long (64-bit)" in report, report


def test_bad_options_and_files_are_reported_in_one_line(tmp_path):
    folder = program_folder(tmp_path, "hello")
    missing = run_pytest(PYTHON, folder, "--vmm-kernel", str(tmp_path / "nothing.elf"))
    assert missing.returncode == pytest.ExitCode.USAGE_ERROR
    assert f"--vmm-kernel {tmp_path / 'nothing.elf'}: no such file" in missing.stderr
    zero = run_pytest(PYTHON, folder, "--vmm-timeout", "0")
    assert zero.returncode == pytest.ExitCode.USAGE_ERROR and "must be a positive number" in zero.stderr
    (tmp_path / "broken.expect").write_text("status: 0\nno separator line\n")
    broken = run_pytest(PYTHON, folder)
    assert broken.returncode == pytest.ExitCode.INTERRUPTED          # a collection error stops the run
    assert "broken.expect: broken.expect has no '---' line before the expected output" in broken.stdout
    assert "Traceback" not in broken.stdout


def test_a_program_that_was_not_built_fails_saying_where_it_looked(tmp_path):
    (tmp_path / "ghost.expect").write_text("status: 0\n---\n")
    proc = run_pytest(PYTHON, tmp_path, "--vmm-accel", "unicorn")
    report = section(proc.stdout, "guest program ghost[unicorn]")
    assert f"program ghost not found (looked in {tmp_path})" in report
    assert "vmm_program_path" in report


def test_vmm_program_path_finds_programs_built_elsewhere(tmp_path):
    (tmp_path / "hello.expect").write_text((paths.PROGRAMS_SOURCE / "hello.expect").read_text())
    (tmp_path / "pytest.ini").write_text(f"[pytest]\nvmm_program_path = {paths.PROGRAMS_BUILD}\n")
    proc = run_pytest(PYTHON, tmp_path, "--vmm-accel", "unicorn")
    assert outcomes(proc.stdout) == {"hello.expect::hello[unicorn]": "PASSED"}, proc.stdout


FIXTURE_TESTS = '''
    import os
    import pytest
    from vmm.machine import Machine

    closed = []
    real_close = Machine.close

    def counting_close(self):
        closed.append(id(self))
        with open(os.environ["CLOSE_LOG"], "a") as log:
            log.write(os.environ["PYTEST_CURRENT_TEST"].split(" ")[0] + "\\n")
        real_close(self)

    Machine.close = counting_close

    def test_runs_on_each_engine(vm, vm_engine):
        result = vm("hello")
        assert (result.engine, result.serial, result.exit_status) == (vm_engine, b"hello from ring 3\\n", 0)

    def test_machines_are_closed_even_when_the_test_fails(vm):
        vm("hello")
        vm.machine("args")                 # built, never run
        raise AssertionError("this test fails on purpose")

    def test_keyword_arguments_reach_the_machine(vm):
        result = vm("args", program_args=["x", "y"], accel="unicorn")
        assert result.engine == "unicorn" and b"argv[2]: y" in result.serial

    @pytest.mark.vmm_requires("user-cpuid")
    def test_cpuid_needs_user_cpuid(vm, vm_engine):
        assert b"hypervisor: PyVMMPyVMMPy" in vm("cpuid").serial
'''


def test_the_vm_fixture_and_vm_engine(tmp_path):
    from vmm.engines.kvm_features import USER_CPUID
    from vmm.machine import engine_class
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(FIXTURE_TESTS))
    log = tmp_path / "closes.log"
    proc = run_pytest(PYTHON, tmp_path, env={"CLOSE_LOG": str(log)})
    results = outcomes(proc.stdout)
    for engine in ENGINES:
        if engine not in available_engines():
            assert results.get(f"test_inner.py::test_runs_on_each_engine[{engine}]") is None
            assert f"test_inner.py: {engine} unavailable: {probe(engine)}" in skipped_reasons(proc.stdout)
            continue
        assert results[f"test_inner.py::test_runs_on_each_engine[{engine}]"] == "PASSED", proc.stdout
        lacks = engine_class(engine).missing_features().get(USER_CPUID)
        cpuid = results.get(f"test_inner.py::test_cpuid_needs_user_cpuid[{engine}]")
        assert cpuid == (None if lacks else "PASSED"), proc.stdout
        if lacks:
            assert f"test_inner.py:30: {engine} lacks user-cpuid: {lacks}" in skipped_reasons(proc.stdout)
    assert results["test_inner.py::test_keyword_arguments_reach_the_machine"] == "PASSED", proc.stdout
    assert results["test_inner.py::test_machines_are_closed_even_when_the_test_fails"] == "FAILED"
    assert "this test fails on purpose" in proc.stdout
    # Both Machines of the failing test were closed, at its teardown.
    closes = log.read_text().splitlines()
    assert closes.count("test_inner.py::test_machines_are_closed_even_when_the_test_fails") == 2, closes
    assert closes.count("test_inner.py::test_keyword_arguments_reach_the_machine") == 1, closes


def test_an_unknown_feature_in_vmm_requires_is_a_usage_error(tmp_path):
    (tmp_path / "test_inner.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.mark.vmm_requires("time-travel")
        def test_x(vm):
            pass
    '''))
    proc = run_pytest(PYTHON, tmp_path)
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert "vmm_requires: unknown feature 'time-travel'; known: user-cpuid" in proc.stderr
