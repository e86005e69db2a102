"""Model-specific registers the VMM sets at boot (Intel SDM volume 4; the list follows
Firecracker's arch/x86_64/msr.rs, create_boot_msr_entries).

Every system-call and SYSENTER MSR starts at 0, so that a guest sees no stale host value,
and IA32_MISC_ENABLE has fast-string operations enabled, as firmware leaves it.
"""

IA32_SYSENTER_CS = 0x174
IA32_SYSENTER_ESP = 0x175
IA32_SYSENTER_EIP = 0x176
IA32_MISC_ENABLE = 0x1A0
IA32_EFER = 0xC000_0080
IA32_STAR = 0xC000_0081
IA32_LSTAR = 0xC000_0082
IA32_CSTAR = 0xC000_0083
IA32_FMASK = 0xC000_0084         # SYSCALL_MASK
IA32_FS_BASE = 0xC000_0100
IA32_GS_BASE = 0xC000_0101
IA32_KERNEL_GS_BASE = 0xC000_0102

MISC_ENABLE_FAST_STRING = 1 << 0

MSR_NAMES = {
    IA32_SYSENTER_CS: "IA32_SYSENTER_CS",
    IA32_SYSENTER_ESP: "IA32_SYSENTER_ESP",
    IA32_SYSENTER_EIP: "IA32_SYSENTER_EIP",
    IA32_MISC_ENABLE: "IA32_MISC_ENABLE",
    IA32_EFER: "IA32_EFER",
    IA32_STAR: "IA32_STAR",
    IA32_LSTAR: "IA32_LSTAR",
    IA32_CSTAR: "IA32_CSTAR",
    IA32_FMASK: "IA32_FMASK",
    IA32_FS_BASE: "IA32_FS_BASE",
    IA32_GS_BASE: "IA32_GS_BASE",
    IA32_KERNEL_GS_BASE: "IA32_KERNEL_GS_BASE",
}

# (index, value) in the order they are written.
BOOT_MSRS = (
    (IA32_SYSENTER_CS, 0),
    (IA32_SYSENTER_ESP, 0),
    (IA32_SYSENTER_EIP, 0),
    (IA32_STAR, 0),
    (IA32_CSTAR, 0),
    (IA32_KERNEL_GS_BASE, 0),
    (IA32_FMASK, 0),
    (IA32_LSTAR, 0),
    (IA32_MISC_ENABLE, MISC_ENABLE_FAST_STRING),
)
