"""The sample project's own tests, through the plugin's fixtures."""
from pathlib import Path

import pytest

GREET = Path(__file__).parent / "programs" / "greet"


def test_greet_prints_its_line(vm, vm_engine):
    result = vm(GREET)
    assert result.engine == vm_engine
    assert (result.serial, result.exit_status) == (b"hello from the sample project\n", 0)


def test_the_tiny_kernel_passes_arguments(vm):
    result = vm("args", program_args=["one", "two"])      # a program the package carries
    assert result.exit_status == 0
    assert b"one" in result.serial and b"two" in result.serial


@pytest.mark.vmm_requires("user-cpuid")
def test_cpuid_from_ring_3_is_the_vmms(vm, vm_engine):
    result = vm("cpuid")
    assert b"hypervisor: PyVMMPyVMMPy\n" in result.serial, result.serial
