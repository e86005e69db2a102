"""The KVM ABI structs as ctypes classes, field for field as in linux/kvm.h and
arch/x86/include/uapi/asm/kvm.h (x86-64). tests/test_kvm_abi.py checks their sizes and
offsets against the kernel headers' values.
"""
import ctypes

u8, u16, u32, u64 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32, ctypes.c_uint64

KVM_NR_INTERRUPTS = 256


class KvmUserspaceMemoryRegion(ctypes.Structure):
    _fields_ = [
        ("slot", u32),
        ("flags", u32),
        ("guest_phys_addr", u64),
        ("memory_size", u64),           # bytes
        ("userspace_addr", u64),        # start of the host mapping
    ]


class KvmRegs(ctypes.Structure):
    _fields_ = [(name, u64) for name in (
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rsp", "rbp",
        "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags")]


class KvmSegment(ctypes.Structure):
    _fields_ = [
        ("base", u64),
        ("limit", u32),
        ("selector", u16),
        ("type", u8),
        ("present", u8), ("dpl", u8), ("db", u8), ("s", u8), ("l", u8), ("g", u8), ("avl", u8),
        ("unusable", u8),
        ("padding", u8),
    ]


class KvmDtable(ctypes.Structure):
    _fields_ = [
        ("base", u64),
        ("limit", u16),
        ("padding", u16 * 3),
    ]


class KvmSregs(ctypes.Structure):
    _fields_ = [
        ("cs", KvmSegment), ("ds", KvmSegment), ("es", KvmSegment), ("fs", KvmSegment),
        ("gs", KvmSegment), ("ss", KvmSegment), ("tr", KvmSegment), ("ldt", KvmSegment),
        ("gdt", KvmDtable), ("idt", KvmDtable),
        ("cr0", u64), ("cr2", u64), ("cr3", u64), ("cr4", u64), ("cr8", u64),
        ("efer", u64),
        ("apic_base", u64),
        ("interrupt_bitmap", u64 * ((KVM_NR_INTERRUPTS + 63) // 64)),
    ]


class KvmFpu(ctypes.Structure):
    _fields_ = [
        ("fpr", (u8 * 16) * 8),
        ("fcw", u16),
        ("fsw", u16),
        ("ftwx", u8),                   # abridged tag word, FXSAVE format
        ("pad1", u8),
        ("last_opcode", u16),
        ("last_ip", u64),
        ("last_dp", u64),
        ("xmm", (u8 * 16) * 16),
        ("mxcsr", u32),
        ("pad2", u32),
    ]


class KvmMsrEntry(ctypes.Structure):
    _fields_ = [
        ("index", u32),
        ("reserved", u32),
        ("data", u64),
    ]


class KvmMsrs(ctypes.Structure):
    """The fixed header of struct kvm_msrs; see msrs_class() for one with entries."""
    _fields_ = [
        ("nmsrs", u32),
        ("pad", u32),
    ]


_msrs_classes = {}


def msrs_class(count: int):
    """struct kvm_msrs followed by `count` kvm_msr_entry (a flexible array member)."""
    cls = _msrs_classes.get(count)
    if cls is None:
        cls = type(f"KvmMsrs{count}", (ctypes.Structure,), {
            "_fields_": [("nmsrs", u32), ("pad", u32), ("entries", KvmMsrEntry * count)]})
        _msrs_classes[count] = cls
    return cls


KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1 << 0     # (sic) the header's spelling


class KvmCpuidEntry2(ctypes.Structure):
    _fields_ = [
        ("function", u32),
        ("index", u32),
        ("flags", u32),
        ("eax", u32), ("ebx", u32), ("ecx", u32), ("edx", u32),
        ("padding", u32 * 3),
    ]


class KvmCpuid2(ctypes.Structure):
    """The fixed header of struct kvm_cpuid2; see cpuid2_class() for one with entries."""
    _fields_ = [
        ("nent", u32),
        ("padding", u32),
    ]


_cpuid2_classes = {}


def cpuid2_class(count: int):
    """struct kvm_cpuid2 followed by `count` kvm_cpuid_entry2 (a flexible array member)."""
    cls = _cpuid2_classes.get(count)
    if cls is None:
        cls = type(f"KvmCpuid2x{count}", (ctypes.Structure,), {
            "_fields_": [("nent", u32), ("padding", u32), ("entries", KvmCpuidEntry2 * count)]})
        _cpuid2_classes[count] = cls
    return cls


# --- struct kvm_run: the vCPU's shared page (mmap of the vCPU fd) -------------------------

class KvmRunHw(ctypes.Structure):            # KVM_EXIT_UNKNOWN
    _fields_ = [("hardware_exit_reason", u64)]


class KvmRunFailEntry(ctypes.Structure):     # KVM_EXIT_FAIL_ENTRY
    _fields_ = [("hardware_entry_failure_reason", u64), ("cpu", u32)]


class KvmRunEx(ctypes.Structure):            # KVM_EXIT_EXCEPTION
    _fields_ = [("exception", u32), ("error_code", u32)]


KVM_EXIT_IO_IN = 0
KVM_EXIT_IO_OUT = 1


class KvmRunIo(ctypes.Structure):            # KVM_EXIT_IO
    _fields_ = [
        ("direction", u8),                   # KVM_EXIT_IO_IN / KVM_EXIT_IO_OUT
        ("size", u8),                        # bytes per element: 1, 2 or 4
        ("port", u16),
        ("count", u32),                      # elements (> 1 for rep ins/outs)
        ("data_offset", u64),                # of the data, from the start of kvm_run
    ]


class KvmRunMmio(ctypes.Structure):          # KVM_EXIT_MMIO
    _fields_ = [
        ("phys_addr", u64),
        ("data", u8 * 8),
        ("len", u32),
        ("is_write", u8),
    ]


class KvmRunInternal(ctypes.Structure):      # KVM_EXIT_INTERNAL_ERROR
    _fields_ = [
        ("suberror", u32),
        ("ndata", u32),                      # with KVM_CAP_INTERNAL_ERROR_DATA
        ("data", u64 * 16),
    ]


KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES = 1 << 0


class KvmRunEmulationFailure(ctypes.Structure):   # overlay of `internal` for suberror 1
    _fields_ = [
        ("suberror", u32),
        ("ndata", u32),
        ("flags", u64),
        ("insn_size", u8),
        ("insn_bytes", u8 * 15),
    ]


class KvmRunSystemEvent(ctypes.Structure):   # KVM_EXIT_SYSTEM_EVENT
    _fields_ = [
        ("type", u32),
        ("ndata", u32),
        ("data", u64 * 16),                  # a union with `u64 flags` (data[0])
    ]


class KvmRunExit(ctypes.Union):
    _fields_ = [
        ("hw", KvmRunHw),
        ("fail_entry", KvmRunFailEntry),
        ("ex", KvmRunEx),
        ("io", KvmRunIo),
        ("mmio", KvmRunMmio),
        ("internal", KvmRunInternal),
        ("emulation_failure", KvmRunEmulationFailure),
        ("system_event", KvmRunSystemEvent),
        ("padding", ctypes.c_char * 256),    # fixes the union's size
    ]


SYNC_REGS_SIZE_BYTES = 2048


class KvmRun(ctypes.Structure):
    _anonymous_ = ("u",)
    _fields_ = [
        # in
        ("request_interrupt_window", u8),
        ("immediate_exit", u8),
        ("padding1", u8 * 6),
        # out
        ("exit_reason", u32),
        ("ready_for_interrupt_injection", u8),
        ("if_flag", u8),
        ("flags", u16),
        # in (before KVM_RUN), out (after)
        ("cr8", u64),
        ("apic_base", u64),
        ("u", KvmRunExit),
        ("kvm_valid_regs", u64),
        ("kvm_dirty_regs", u64),
        ("s", ctypes.c_char * SYNC_REGS_SIZE_BYTES),
    ]
