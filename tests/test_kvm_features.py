"""What the VMM knows of its KVM (vmm/engines/kvm_features.py) and how the tests use it
(tests/conftest.py's kvm markers), on this host and on the KVMs it can tell apart."""
import pytest

from vmm.engines import kvm_features as f

from conftest import emulated_host_cpu, kvm_feature_skip


def lacks(modules=(), nrips="1", probe=None):
    present = {f.PVM_MODULE: "kvm_pvm" in modules, f.AMD_MODULE: "kvm_amd" in modules}
    return f.lacks(lambda path: present.get(path, False), lambda path: nrips if path == f.AMD_NRIPS else "",
                   probe or (lambda int3: {}))


def test_vt_x_lacks_nothing():
    assert lacks(["kvm_intel"]) == {}


def test_pvm_lacks_the_ring3_behaviours_and_int3_is_not_probed_there():
    probed = []
    found = lacks(["kvm_pvm"], probe=lambda int3: probed.append(int3) or {})
    assert set(found) == {f.USER_CPUID, f.LINUX_RING0, f.SYSCALL_RING0, f.SW_BREAKPOINTS, f.USER_DEBUG}
    assert probed == [False] and "kvm_pvm" in found[f.USER_CPUID]


def test_kvm_amd_loses_registers_on_a_triple_fault_and_steps_without_nrips():
    assert set(lacks(["kvm_amd"], nrips="1")) == {f.REGISTERS_AFTER_SHUTDOWN}
    assert set(lacks(["kvm_amd"], nrips="0")) == {f.REGISTERS_AFTER_SHUTDOWN, f.STEP_MODE_SWITCH}


def test_a_kvm_in_qemu_tcg_lacks_both_breakpoint_kinds():
    probe = lambda int3: {f.HW_BREAKPOINTS: "DR7 not armed", f.SW_BREAKPOINTS: "INT3 is a software interrupt"}
    found = lacks(["kvm_amd"], nrips="0", probe=probe)
    assert {f.HW_BREAKPOINTS, f.SW_BREAKPOINTS, f.BREAKPOINTS} <= set(found)
    assert f.BREAKPOINTS not in lacks(["kvm_amd"], probe=lambda int3: {f.HW_BREAKPOINTS: "x"})


def test_this_hosts_kvm_is_probed(requires_kvm):
    """Whatever this KVM is, the probe runs a guest and reaches a verdict; the debug registers
    work in ring 0 on kvm_pvm and on hardware, and not on a KVM nested in QEMU's TCG."""
    found = f.breakpoints_stop_a_guest(int3=True)
    assert all("could not run" not in reason for reason in found.values())
    assert (f.HW_BREAKPOINTS in found) == bool(emulated_host_cpu())
    assert f.missing() == f.missing()                            # computed once, copies handed out


@pytest.mark.parametrize("missing, marks, expected", [
    ({}, [("kvm_feature", ("user-cpuid",))], None),
    ({"user-cpuid": "PVM"}, [("kvm_feature", ("user-cpuid",))], "needs KVM with user-cpuid: PVM"),
    ({"user-cpuid": "PVM"}, [("kvm_lacks", ("user-cpuid",))], None),
    ({}, [("kvm_lacks", ("syscall-ring0",))],
     "tests how the VMM copes with a KVM without syscall-ring0, and this KVM has it"),
])
def test_markers_skip_with_the_reason(missing, marks, expected):
    marks = [getattr(pytest.mark, name)(*args).mark for name, args in marks]
    assert kvm_feature_skip(missing, marks) == expected


def test_an_emulated_cpu_is_recognised(tmp_path):
    (tmp_path / "tcg").write_text("processor\t: 0\nmodel name\t: QEMU TCG CPU version 2.5+\n")
    (tmp_path / "epyc").write_text("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n")
    assert emulated_host_cpu(str(tmp_path / "tcg")) == "QEMU TCG CPU version 2.5+"
    assert emulated_host_cpu(str(tmp_path / "epyc")) is None
    assert emulated_host_cpu(str(tmp_path / "missing")) is None
