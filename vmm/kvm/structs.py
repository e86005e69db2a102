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


class KvmLapicState(ctypes.Structure):
    """struct kvm_lapic_state: the local APIC's register page as KVM keeps it (xAPIC layout,
    KVM_APIC_REG_SIZE bytes), for KVM_GET_LAPIC / KVM_SET_LAPIC."""
    _fields_ = [("regs", ctypes.c_uint8 * 0x400)]


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


class KvmXsave(ctypes.Structure):
    """struct kvm_xsave: the vCPU's XSAVE image (legacy FXSAVE area, header, extended
    state), for KVM_GET_XSAVE / KVM_SET_XSAVE."""
    _fields_ = [("region", ctypes.c_uint32 * 1024)]


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


# --- guest debugging (KVM_SET_GUEST_DEBUG, KVM_EXIT_DEBUG) ---------------------------------

# kvm_guest_debug.control (linux/kvm.h, asm/kvm.h)
KVM_GUESTDBG_ENABLE = 0x0000_0001
KVM_GUESTDBG_SINGLESTEP = 0x0000_0002
KVM_GUESTDBG_USE_SW_BP = 0x0001_0000      # int3 in the guest exits to us instead of #BP
KVM_GUESTDBG_USE_HW_BP = 0x0002_0000      # debugreg[0..3, 7] are our breakpoints
KVM_GUESTDBG_INJECT_DB = 0x0004_0000
KVM_GUESTDBG_INJECT_BP = 0x0008_0000
KVM_GUESTDBG_BLOCKIRQ = 0x0010_0000       # no interrupt injection while single-stepping


class KvmGuestDebugArch(ctypes.Structure):
    _fields_ = [("debugreg", u64 * 8)]        # DR0-DR3 addresses, [6] unused, [7] = DR7


class KvmGuestDebug(ctypes.Structure):
    _fields_ = [
        ("control", u32),
        ("pad", u32),
        ("arch", KvmGuestDebugArch),
    ]


class KvmMpState(ctypes.Structure):
    _fields_ = [("mp_state", u32)]


class KvmTranslation(ctypes.Structure):      # KVM_TRANSLATE
    _fields_ = [
        ("linear_address", u64),             # in
        ("physical_address", u64),           # out
        ("valid", u8),
        ("writeable", u8),
        ("usermode", u8),
        ("pad", u8 * 5),
    ]


# --- the in-kernel interrupt controllers and timer (KVM_CREATE_IRQCHIP, KVM_CREATE_PIT2) -------

class KvmIrqLevel(ctypes.Structure):         # KVM_IRQ_LINE
    _fields_ = [
        ("irq", u32),                        # the GSI (a union with `s32 status`, KVM_IRQ_LINE_STATUS's answer)
        ("level", u32),                      # 1 raised, 0 lowered
    ]


KVM_PIT_SPEAKER_DUMMY = 1                    # KVM answers port 0x61 itself (gate and output of channel 2)


class KvmPitConfig(ctypes.Structure):        # KVM_CREATE_PIT2
    _fields_ = [
        ("flags", u32),
        ("pad", u32 * 15),
    ]


class KvmPicState(ctypes.Structure):         # one 8259A of the in-kernel PIC pair
    _fields_ = [(name, u8) for name in (
        "last_irr", "irr", "imr", "isr", "priority_add", "irq_base", "read_reg_select", "poll",
        "special_mask", "init_state", "auto_eoi", "rotate_on_auto_eoi", "special_fully_nested_mode",
        "init4", "elcr", "elcr_mask")]


KVM_IOAPIC_NUM_PINS = 24


class KvmIoapicState(ctypes.Structure):      # the in-kernel IOAPIC
    _fields_ = [
        ("base_address", u64),
        ("ioregsel", u32),
        ("id", u32),
        ("irr", u32),                        # pins whose line is asserted (level) or whose edge waits
        ("pad", u32),
        ("redirtbl", u64 * KVM_IOAPIC_NUM_PINS),   # the 64-bit redirection entries
    ]


class KvmIrqchipState(ctypes.Union):
    _fields_ = [
        ("dummy", ctypes.c_char * 512),      # fixes the union's size
        ("pic", KvmPicState),
        ("ioapic", KvmIoapicState),
    ]


class KvmIrqchip(ctypes.Structure):          # KVM_GET_IRQCHIP, KVM_SET_IRQCHIP
    _fields_ = [
        ("chip_id", u32),                    # constants.KVM_IRQCHIP_PIC_MASTER, _PIC_SLAVE, _IOAPIC
        ("pad", u32),
        ("chip", KvmIrqchipState),
    ]


class KvmPitChannelState(ctypes.Structure):  # one channel of the in-kernel 8254
    _fields_ = [
        ("count", u32),                      # the count loaded (65536 for a written 0)
        ("latched_count", u16),
        ("count_latched", u8),               # 0, or the RW mode the latched count is read in
        ("status_latched", u8),
        ("status", u8),
        ("read_state", u8),                  # KVM's RW_STATE_*: 1 LSB, 2 MSB, 3 word LSB next, 4 word MSB next
        ("write_state", u8),
        ("write_latch", u8),                 # the LSB of a word write awaiting its MSB
        ("rw_mode", u8),
        ("mode", u8),
        ("bcd", u8),
        ("gate", u8),
        ("count_load_time", ctypes.c_int64),  # the host's CLOCK_MONOTONIC ns when the count was loaded
    ]


class KvmPitState2(ctypes.Structure):        # KVM_GET_PIT2, KVM_SET_PIT2
    _fields_ = [
        ("channels", KvmPitChannelState * 3),
        ("flags", u32),
        ("reserved", u32 * 9),
    ]


# kvm_vcpu_events.flags and interrupt.shadow (asm/kvm.h)
KVM_VCPUEVENT_VALID_NMI_PENDING = 0x01
KVM_VCPUEVENT_VALID_SIPI_VECTOR = 0x02
KVM_VCPUEVENT_VALID_SHADOW = 0x04
KVM_X86_SHADOW_INT_MOV_SS = 0x01
KVM_X86_SHADOW_INT_STI = 0x02


class KvmEventException(ctypes.Structure):
    _fields_ = [("injected", u8), ("nr", u8), ("has_error_code", u8), ("pending", u8), ("error_code", u32)]


class KvmEventInterrupt(ctypes.Structure):
    _fields_ = [("injected", u8), ("nr", u8), ("soft", u8), ("shadow", u8)]


class KvmEventNmi(ctypes.Structure):
    _fields_ = [("injected", u8), ("pending", u8), ("masked", u8), ("pad", u8)]


class KvmVcpuEvents(ctypes.Structure):       # KVM_GET_VCPU_EVENTS, KVM_SET_VCPU_EVENTS
    _fields_ = [
        ("exception", KvmEventException),
        ("interrupt", KvmEventInterrupt),
        ("nmi", KvmEventNmi),
        ("sipi_vector", u32),
        ("flags", u32),
        ("smi", u8 * 4),
        ("triple_fault", u8),
        ("reserved", u8 * 26),
        ("exception_has_payload", u8),
        ("exception_payload", u64),
    ]


class KvmDirtyLog(ctypes.Structure):         # KVM_GET_DIRTY_LOG
    _fields_ = [
        ("slot", u32),
        ("padding1", u32),
        ("dirty_bitmap", u64),               # the address of a bitmap, one bit per page of the slot
    ]


# KVM_{GET,SET}_DEVICE_ATTR on a vCPU: the TSC offset (KVM_CAP_VCPU_ATTRIBUTES, Linux 5.16)
KVM_VCPU_TSC_CTRL = 0
KVM_VCPU_TSC_OFFSET = 0


class KvmDeviceAttr(ctypes.Structure):
    _fields_ = [
        ("flags", u32),
        ("group", u32),
        ("attr", u64),
        ("addr", u64),                       # the address of the attribute's value
    ]


# --- binary statistics (KVM_GET_STATS_FD): a file of named counters, readable from any thread ---

class KvmStatsHeader(ctypes.Structure):
    _fields_ = [
        ("flags", u32),
        ("name_size", u32),                  # bytes of each descriptor's name field
        ("num_desc", u32),
        ("id_offset", u32),
        ("desc_offset", u32),                # the descriptors, each 16 + name_size bytes
        ("data_offset", u32),                # the values: u64s, at data_offset + desc.offset
    ]


class KvmStatsDesc(ctypes.Structure):        # followed by `name_size` bytes of NUL-padded name
    _fields_ = [
        ("flags", u32),                      # type, unit, base (KVM_STATS_*_MASK)
        ("exponent", ctypes.c_int16),
        ("size", u16),                       # number of u64 values
        ("offset", u32),                     # from the header's data_offset
        ("bucket_size", u32),
    ]


# --- struct kvm_run: the vCPU's shared page (mmap of the vCPU fd) -------------------------

class KvmRunHw(ctypes.Structure):            # KVM_EXIT_UNKNOWN
    _fields_ = [("hardware_exit_reason", u64)]


class KvmRunFailEntry(ctypes.Structure):     # KVM_EXIT_FAIL_ENTRY
    _fields_ = [("hardware_entry_failure_reason", u64), ("cpu", u32)]


class KvmRunEx(ctypes.Structure):            # KVM_EXIT_EXCEPTION
    _fields_ = [("exception", u32), ("error_code", u32)]


KVM_EXIT_IO_IN = 0
KVM_EXIT_IO_OUT = 1


class KvmRunDebug(ctypes.Structure):         # KVM_EXIT_DEBUG (struct kvm_debug_exit_arch)
    _fields_ = [
        ("exception", u32),                  # 1 (#DB: single step, hardware breakpoint) or 3 (#BP)
        ("pad", u32),
        ("pc", u64),                         # linear address of the instruction (cs.base + rip)
        ("dr6", u64),
        ("dr7", u64),
    ]


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
        ("debug", KvmRunDebug),
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
