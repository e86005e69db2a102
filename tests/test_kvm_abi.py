"""The ctypes binding against the kernel ABI (x86-64 linux/kvm.h, asm/kvm.h).

The expected numbers were printed by a C program built against /usr/include/linux/kvm.h
(sizeof, offsetof and the _IO* macros), so a struct that drifts from the kernel's fails here.
"""
import ast
import ctypes
import errno
import os
from pathlib import Path

import pytest

from vmm.errors import AcceleratorUnavailable, VmmError
from vmm.kvm import Kvm, KvmError
from vmm.kvm import constants as kc
from vmm.kvm import ioctl_numbers as r
from vmm.kvm import structs as s
from vmm.kvm import system
from vmm.kvm import vcpu as vcpu_module
from vmm.kvm.ioctl import KVMIO, _IO, _IOR, _IOW, _IOWR

VMM_SOURCE = Path(__file__).resolve().parent.parent / "vmm"


@pytest.mark.parametrize("struct,size", [
    (s.KvmRegs, 144),
    (s.KvmSegment, 24),
    (s.KvmDtable, 16),
    (s.KvmSregs, 312),
    (s.KvmFpu, 416),
    (s.KvmXsave, 4096),
    (s.KvmMsrEntry, 16),
    (s.KvmMsrs, 8),
    (s.KvmCpuidEntry2, 40),
    (s.KvmCpuid2, 8),
    (s.KvmUserspaceMemoryRegion, 32),
    (s.KvmRun, 2352),
    (s.KvmIrqLevel, 8),
    (s.KvmPitConfig, 64),
    (s.KvmPicState, 16),
    (s.KvmIrqchip, 520),
    (s.KvmStatsHeader, 24),
    (s.KvmStatsDesc, 16),
    (s.KvmPitChannelState, 24),
    (s.KvmPitState2, 112),
    (s.KvmIoapicState, 216),
    (s.KvmVcpuEvents, 64),
    (s.KvmDirtyLog, 16),
    (s.KvmDeviceAttr, 24),
])
def test_struct_sizes(struct, size):
    assert ctypes.sizeof(struct) == size


@pytest.mark.parametrize("struct,field,offset", [
    (s.KvmRun, "immediate_exit", 1),
    (s.KvmRun, "exit_reason", 8),
    (s.KvmRun, "if_flag", 13),
    (s.KvmRun, "cr8", 16),
    (s.KvmRun, "apic_base", 24),
    (s.KvmRun, "io", 32),
    (s.KvmRun, "mmio", 32),
    (s.KvmRun, "kvm_valid_regs", 288),
    (s.KvmRun, "s", 304),
    (s.KvmRunIo, "port", 2),
    (s.KvmRunIo, "count", 4),
    (s.KvmRunIo, "data_offset", 8),
    (s.KvmRunMmio, "data", 8),
    (s.KvmRunMmio, "len", 16),
    (s.KvmRunMmio, "is_write", 20),
    (s.KvmRunInternal, "data", 8),
    (s.KvmRunEmulationFailure, "flags", 8),
    (s.KvmRunEmulationFailure, "insn_size", 16),
    (s.KvmRunEmulationFailure, "insn_bytes", 17),
    (s.KvmRunSystemEvent, "data", 8),
    (s.KvmRunFailEntry, "cpu", 8),
    (s.KvmSregs, "gdt", 192),
    (s.KvmSregs, "idt", 208),
    (s.KvmSregs, "cr0", 224),
    (s.KvmSregs, "efer", 264),
    (s.KvmSregs, "apic_base", 272),
    (s.KvmSregs, "interrupt_bitmap", 280),
    (s.KvmSegment, "selector", 12),
    (s.KvmSegment, "unusable", 22),
    (s.KvmFpu, "fcw", 128),
    (s.KvmFpu, "ftwx", 132),
    (s.KvmFpu, "last_ip", 136),
    (s.KvmFpu, "xmm", 152),
    (s.KvmFpu, "mxcsr", 408),
    (s.KvmIrqchip, "chip", 8),
    (s.KvmPicState, "elcr", 14),
    (s.KvmStatsHeader, "data_offset", 20),
    (s.KvmStatsDesc, "offset", 8),
    (s.KvmStatsDesc, "bucket_size", 12),
    (s.KvmPitChannelState, "count_load_time", 16),
    (s.KvmPitState2, "flags", 72),
    (s.KvmIoapicState, "redirtbl", 24),
    (s.KvmVcpuEvents, "sipi_vector", 16),
    (s.KvmVcpuEvents, "flags", 20),
    (s.KvmVcpuEvents, "smi", 24),
    (s.KvmVcpuEvents, "exception_payload", 56),
])
def test_field_offsets(struct, field, offset):
    assert getattr(struct, field).offset == offset


def test_variable_length_structs():
    assert ctypes.sizeof(s.cpuid2_class(3)) == 8 + 3 * 40
    assert ctypes.sizeof(s.msrs_class(5)) == 8 + 5 * 16
    assert s.cpuid2_class(3) is s.cpuid2_class(3)        # one class per count


@pytest.mark.parametrize("request_number,value", [
    (r.KVM_GET_API_VERSION, 0xAE00),
    (r.KVM_CREATE_VM, 0xAE01),
    (r.KVM_CHECK_EXTENSION, 0xAE03),
    (r.KVM_GET_VCPU_MMAP_SIZE, 0xAE04),
    (r.KVM_GET_SUPPORTED_CPUID, 0xC008AE05),
    (r.KVM_CREATE_VCPU, 0xAE41),
    (r.KVM_SET_USER_MEMORY_REGION, 0x4020AE46),
    (r.KVM_SET_TSS_ADDR, 0xAE47),
    (r.KVM_SET_IDENTITY_MAP_ADDR, 0x4008AE48),
    (r.KVM_RUN, 0xAE80),
    (r.KVM_GET_REGS, 0x8090AE81),
    (r.KVM_SET_REGS, 0x4090AE82),
    (r.KVM_GET_SREGS, 0x8138AE83),
    (r.KVM_SET_SREGS, 0x4138AE84),
    (r.KVM_GET_MSRS, 0xC008AE88),
    (r.KVM_SET_MSRS, 0x4008AE89),
    (r.KVM_GET_FPU, 0x81A0AE8C),
    (r.KVM_SET_FPU, 0x41A0AE8D),
    (r.KVM_GET_XSAVE, 0x9000AEA4),
    (r.KVM_SET_XSAVE, 0x5000AEA5),
    (r.KVM_SET_CPUID2, 0x4008AE90),
    (r.KVM_GET_TSC_KHZ, 0xAEA3),
    (r.KVM_CREATE_IRQCHIP, 0xAE60),
    (r.KVM_IRQ_LINE, 0x4008AE61),
    (r.KVM_GET_IRQCHIP, 0xC208AE62),
    (r.KVM_CREATE_PIT2, 0x4040AE77),
    (r.KVM_GET_STATS_FD, 0xAECE),
    (r.KVM_SET_IRQCHIP, 0x8208AE63),
    (r.KVM_GET_PIT2, 0x8070AE9F),
    (r.KVM_SET_PIT2, 0x4070AEA0),
    (r.KVM_GET_VCPU_EVENTS, 0x8040AE9F),
    (r.KVM_SET_VCPU_EVENTS, 0x4040AEA0),
    (r.KVM_GET_DIRTY_LOG, 0x4010AE42),
    (r.KVM_SET_DEVICE_ATTR, 0x4018AEE1),
    (r.KVM_GET_DEVICE_ATTR, 0x4018AEE2),
    (r.KVM_HAS_DEVICE_ATTR, 0x4018AEE3),
    (r.KVM_SET_TSC_KHZ, 0xAEA2),
])
def test_ioctl_numbers(request_number, value):
    assert request_number == value


def test_ioctl_encoding_helpers():
    assert _IO(KVMIO, 0x80) == 0xAE80
    assert _IOR(KVMIO, 0x81, s.KvmRegs) == 0x8090AE81
    assert _IOW(KVMIO, 0x46, s.KvmUserspaceMemoryRegion) == 0x4020AE46
    assert _IOWR(KVMIO, 0x05, s.KvmCpuid2) == 0xC008AE05


def test_exit_reason_names():
    assert kc.exit_name(kc.KVM_EXIT_IO) == "io"
    assert kc.exit_name(kc.KVM_EXIT_HLT) == "hlt"
    assert kc.exit_name(99) == "exit-99"


def _imports_fcntl(path: Path) -> bool:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "fcntl" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "fcntl":
            return True
    return False


def test_fcntl_is_imported_nowhere():
    sources = sorted(VMM_SOURCE.rglob("*.py"))
    assert sources
    assert [str(p) for p in sources if _imports_fcntl(p)] == []
    # The KVM binding does not even mention it: its ioctls go through libc by ctypes.
    assert [str(p) for p in (VMM_SOURCE / "kvm").rglob("*.py") if "fcntl" in p.read_text()] == []


def test_kvm_error_names_the_ioctl_and_errno():
    error = KvmError("KVM_CREATE_VM", errno.EINVAL)
    assert str(error) == "KVM_CREATE_VM failed: EINVAL (Invalid argument)"
    assert error.errno == errno.EINVAL
    assert isinstance(error, VmmError)


def test_missing_device_is_reported_in_one_line(tmp_path):
    with pytest.raises(AcceleratorUnavailable) as info:
        Kvm(str(tmp_path / "kvm"))
    assert str(info.value) == f"{tmp_path / 'kvm'} does not exist (KVM not available on this host)"
    assert info.value.exit_status == 69


@pytest.mark.parametrize("err,text", [
    (errno.ENOENT, "/dev/kvm does not exist (KVM not available on this host)"),
    (errno.EACCES, "permission denied opening /dev/kvm (add yourself to the kvm group)"),
    (errno.EPERM, "permission denied opening /dev/kvm (add yourself to the kvm group)"),
    (errno.EIO, "cannot open /dev/kvm: Input/output error"),
])
def test_open_errors_map_to_accelerator_unavailable(monkeypatch, err, text):
    def failing_open(path, flags, *args):
        raise OSError(err, os.strerror(err), path)
    monkeypatch.setattr(system.os, "open", failing_open)
    with pytest.raises(AcceleratorUnavailable) as info:
        system.open_kvm_device()
    assert str(info.value) == text


@pytest.mark.parametrize("updates_nent", [True, False], ids=["recent-kernel", "linux-6.1"])
def test_get_cpuid2_counts_entries_on_every_kernel(monkeypatch, updates_nent):
    """Linux 6.1 (Debian 12) returns KVM_GET_CPUID2's entries without setting `nent`; the
    entries then end at the first sentinel the kernel did not overwrite."""
    def fake_ioctl(fd, request, buf, name):
        for i in range(3):
            buf.entries[i] = s.KvmCpuidEntry2(function=i, index=0, eax=i + 10)
        if updates_nent:
            buf.nent = 3
        return 0
    monkeypatch.setattr(vcpu_module, "ioctl", fake_ioctl)
    vcpu = object.__new__(vcpu_module.Vcpu)
    vcpu.fd = -1
    assert [(e.function, e.eax) for e in vcpu.get_cpuid2()] == [(0, 10), (1, 11), (2, 12)]


# --- against the live /dev/kvm -----------------------------------------------------------------

def test_api_version_capabilities_and_cpuid(requires_kvm):
    with Kvm() as kvm:
        assert kvm.vcpu_mmap_size >= ctypes.sizeof(s.KvmRun)
        assert kvm.check_extension(kc.KVM_CAP_USER_MEMORY) > 0
        leaves = {(e.function, e.index) for e in kvm.supported_cpuid()}
        assert (0, 0) in leaves and (1, 0) in leaves and (0x8000_0001, 0) in leaves


def test_missing_capability_is_named(requires_kvm):
    with pytest.raises(AcceleratorUnavailable, match="lacks capability 987654"):
        Kvm(required=(987654,))


def test_failed_ioctl_raises_kvm_error(requires_kvm):
    with Kvm() as kvm, kvm.create_vm() as vm:
        with pytest.raises(KvmError, match=r"^KVM_SET_USER_MEMORY_REGION failed: EINVAL"):
            vm.set_user_memory_region(0, 0x123, 4096, 0)      # unaligned guest address


def test_vcpu_registers_msrs_and_double_close(requires_kvm):
    kvm = Kvm()
    vm = kvm.create_vm()
    vcpu = vm.create_vcpu(0)
    regs = vcpu.get_regs()
    regs.rax, regs.r15, regs.rip = 0x1122334455667788, 7, 0x1000
    vcpu.set_regs(regs)
    again = vcpu.get_regs()
    assert (again.rax, again.r15, again.rip) == (0x1122334455667788, 7, 0x1000)
    assert vcpu.set_msrs([(0xC000_0082, 0xFFFF_8000_0000_1000)]) == 1           # LSTAR
    assert vcpu.get_msrs([0xC000_0082]) == {0xC000_0082: 0xFFFF_8000_0000_1000}
    assert vcpu.get_tsc_khz() > 0
    for thing in (vcpu, vm, kvm):
        thing.close()
        thing.close()                                   # closing twice is harmless
    assert vcpu.fd == vm.fd == kvm.fd == -1


def test_irqchip_pit_and_vcpu_statistics(requires_kvm):
    from vmm.kvm.stats import Stats
    with Kvm() as kvm, kvm.create_vm() as vm:
        vm.create_irqchip()
        vm.create_pit2(s.KVM_PIT_SPEAKER_DUMMY)
        with pytest.raises(KvmError, match="^KVM_CREATE_IRQCHIP failed: EEXIST"):
            vm.create_irqchip()
        master = vm.get_pic_state(kc.KVM_IRQCHIP_PIC_MASTER)
        assert (master.imr, master.elcr_mask) == (0, 0xF8)      # reset state; ELCR can't make IRQ 0-2 level
        vm.irq_line(4)(True)
        assert vm.get_pic_state(kc.KVM_IRQCHIP_PIC_MASTER).irr & (1 << 4)
        vcpu = vm.create_vcpu(0)
        with Stats(vcpu.fd) as stats:
            assert "blocking" in stats and "halt_exits" in stats
            assert stats.reader("blocking", "halt_exits")() == (0, 0)
            assert stats.as_dict()["halt_exits"] == 0
