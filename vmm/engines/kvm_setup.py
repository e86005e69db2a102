"""Building a KVM vCPU the way the engine needs it: guest memory slots, our CPUID table,
the boot MSRs and a reset FPU (engines/kvm.py calls these once, at construction)."""
import errno
import os
import threading

from .. import layout
from ..arch.x86 import msrs
from ..arch.x86.cpu_state import FPU_CONTROL_WORD_RESET, MXCSR_RESET
from ..arch.x86.cpuid import CpuidEntry, CpuidTable
from ..kvm import Kvm, KvmError
from ..kvm import constants as kc
from ..kvm.structs import KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_PIT_SPEAKER_DUMMY, KvmCpuidEntry2, KvmFpu


def map_memory(kvm, vm, memory) -> None:
    """One memory slot per region: RAM, then read-only images (firmware). A guest write
    to a read-only slot becomes an MMIO exit, which the bus drops and counts."""
    for slot, (gpa, size, host_address, read_only) in enumerate(memory.regions()):
        if read_only:
            kvm.require(kc.KVM_CAP_READONLY_MEM)
        vm.set_user_memory_region(slot, gpa, size, host_address, kc.KVM_MEM_READONLY if read_only else 0)


def create_vm(memory, irqchip: bool = True) -> tuple:
    """(kvm, vm, vcpu): a VM with the TSS and identity-map pages from layout.py, `memory`'s
    regions (map_memory: before the irqchip, after which each slot costs KVM milliseconds),
    KVM's in-kernel interrupt controllers and PIT (with `irqchip`; both before any vCPU),
    and vCPU 0. Everything made is closed again if a step fails."""
    kvm, vm = open_vm()                 # (the probe's VM, if still unused)
    try:
        vm.set_tss_addr(layout.KVM_TSS_ADDR)
        vm.set_identity_map_addr(layout.KVM_IDENTITY_MAP_ADDR)
        map_memory(kvm, vm, memory)
        if irqchip:
            vm.create_irqchip()
            vm.create_pit2(KVM_PIT_SPEAKER_DUMMY)
        return kvm, vm, vm.create_vcpu(0)
    except BaseException:
        vm.close()
        kvm.close()
        raise


class PreparedVm:
    """create_vm() on a thread of its own, started as soon as guest memory exists (Machine):
    the kernel's share of it (KVM_CREATE_PIT2 starts a kernel thread, which takes
    milliseconds on a busy host) overlaps the Python work of building the machine, or of
    loading a snapshot. take() waits for it. The memory's regions must not change meanwhile."""

    def __init__(self, memory, irqchip: bool = True):
        self._made = self._error = None
        self.regions = len(memory.regions())
        self._thread = threading.Thread(target=self._make, args=(memory, irqchip), name="kvm-vm-setup", daemon=True)
        self._thread.start()

    def _make(self, memory, irqchip):
        try:
            self._made = create_vm(memory, irqchip)
        except BaseException as error:
            self._error = error

    def take(self) -> tuple:
        """(kvm, vm, vcpu), or the error that creating them raised; once."""
        self._thread.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        made, self._made = self._made, None
        return made

    def discard(self) -> None:
        """Close what was made, if nobody took it (the machine failed before its engine)."""
        self._thread.join()
        made, self._made = self._made, None
        if made is not None:
            made[1].close()
            made[0].close()


def set_cpuid(kvm, vcpu, table: CpuidTable) -> tuple:
    """Our table, minus what KVM cannot give, goes to KVM_SET_CPUID2 entry for entry. Some
    KVMs then change entries (kvm_pvm merges host features into leaves 1 and 7 and adds leaf
    0xD). Returns (the features dropped, the differences KVM made), for reports."""
    supported = CpuidTable(
        CpuidEntry(e.function, e.index, e.eax, e.ebx, e.ecx, e.edx,
                   significant_index=bool(e.flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX))
        for e in kvm.supported_cpuid())
    dropped = table.restrict_to(supported)
    vcpu.set_cpuid2(
        KvmCpuidEntry2(function=e.function, index=e.index,
                       flags=KVM_CPUID_FLAG_SIGNIFCANT_INDEX if e.significant_index else 0,
                       eax=e.eax, ebx=e.ebx, ecx=e.ecx, edx=e.edx)
        for e in table.entries)
    return dropped, table.differences(vcpu.get_cpuid2())


def set_boot_msrs(vcpu) -> None:
    done = vcpu.set_msrs(msrs.BOOT_MSRS)
    if done != len(msrs.BOOT_MSRS):
        index = msrs.BOOT_MSRS[done][0]
        raise KvmError(f"KVM_SET_MSRS ({msrs.MSR_NAMES.get(index, hex(index))} refused)", errno.EINVAL)


def set_boot_fpu(vcpu) -> None:
    fpu = KvmFpu()
    fpu.fcw = FPU_CONTROL_WORD_RESET
    fpu.mxcsr = MXCSR_RESET
    vcpu.set_fpu(fpu)


_probe_vm = None                # (pid, Kvm, Vm) made by measure_tsc_khz, for the next open_vm()
_probe_vm_lock = threading.Lock()


def measure_tsc_khz() -> int:
    """KVM_GET_TSC_KHZ, from a VM made for the purpose (which also proves KVM works here).
    That VM is kept for the next engine (open_vm): making and destroying one costs about
    2 ms, a tenth of a `vmm run`. Where only a vCPU answers (Linux before 6.0), a throwaway
    vCPU does, and that VM goes (a vCPU must not exist before the engine's irqchip)."""
    global _probe_vm
    kvm = Kvm(required=kc.REQUIRED_CAPABILITIES + kc.IRQCHIP_CAPABILITIES)
    try:
        vm = kvm.create_vm()
    except BaseException:
        kvm.close()
        raise
    try:
        khz = vm.get_tsc_khz()
    except KvmError:
        with kvm, vm:
            return vm.create_vcpu(0).get_tsc_khz()
    with _probe_vm_lock:
        spare, _probe_vm = _probe_vm, (os.getpid(), kvm, vm)
    if spare is not None:
        for handle in reversed(spare[1:]):
            handle.close()
    return khz


def open_vm() -> tuple:
    """(Kvm, Vm) for a new engine: the probe's VM if no engine took it yet, else new ones."""
    global _probe_vm
    with _probe_vm_lock:
        spare, _probe_vm = _probe_vm, None
    if spare is not None:
        pid, *handles = spare
        if pid == os.getpid():
            return tuple(handles)
        # A forked child (vmm test -j, a process pool) inherits the parent's probe VM, but a
        # KVM VM answers only the process that made it: its ioctls fail with EIO elsewhere.
        for handle in reversed(handles):
            handle.close()
    kvm = Kvm()
    try:
        return kvm, kvm.create_vm()
    except BaseException:
        kvm.close()
        raise
