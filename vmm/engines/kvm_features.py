"""Which guest-visible behaviours of real hardware virtualisation this host's KVM provides.

A KVM on VT-x or AMD-V runs the guest on the CPU as the architecture says. Not every KVM
does: PVM (the kvm_pvm module, this project's machine) is nested without VT-x/AMD-V; it runs
guest ring 3 as host user code and emulates ring 0, and so lacks much of it. kvm_amd, even on
real hardware, resets the vCPU on a triple fault; nested inside QEMU 7.2's TCG (the test
suite's `make test-nested`) it also lacks what that TCG does not emulate. Each feature below
names one behaviour; missing() returns those this host's KVM lacks, with the reason, for
KvmEngine.missing_features(): `.expect` files `require:` them, tests mark themselves with them
(tests/conftest.py), and the gdb stub picks its breakpoints by them.
"""
import os

USER_CPUID = "user-cpuid"                   # ring-3 CPUID answers from the VMM's CPUID table
LINUX_RING0 = "linux-ring0"                 # a stock Linux kernel's ring 0 runs (the Linux tests need it)
SYSCALL_RING0 = "syscall-ring0"             # `syscall` from ring 3 enters ring 0 at LSTAR
SW_BREAKPOINTS = "sw-breakpoints"           # int3 exits to the VMM (KVM_GUESTDBG_USE_SW_BP)
HW_BREAKPOINTS = "hw-breakpoints"           # debug-register breakpoints (KVM_GUESTDBG_USE_HW_BP) fire
BREAKPOINTS = "breakpoints"                 # one of the two: without, the debugger can only single-step
USER_DEBUG = "user-debug"                   # single-steps and debug registers see ring-3 code
STEP_MODE_SWITCH = "step-mode-switch"       # single-stepping goes on across the switch to long mode
REGISTERS_AFTER_SHUTDOWN = "registers-after-shutdown"   # a triple fault leaves the registers as they were
TSC_SET = "tsc-set"                         # the VMM sets the guest's TSC (a restored snapshot's, a paused VM's)
FEATURES = (USER_CPUID, LINUX_RING0, SYSCALL_RING0, SW_BREAKPOINTS, HW_BREAKPOINTS, BREAKPOINTS, USER_DEBUG,
            STEP_MODE_SWITCH, REGISTERS_AFTER_SHUTDOWN, TSC_SET)     # every name above: `requires:` may use them

PVM_MODULE = "/sys/module/kvm_pvm"          # KVM is PVM: nested, no VT-x/AMD-V
AMD_MODULE = "/sys/module/kvm_amd"          # KVM is on AMD SVM
AMD_NRIPS = "/sys/module/kvm_amd/parameters/nrips"      # "0"/"N": the CPU has no next-RIP save

_PVM_LACKS = {
    USER_CPUID: "KVM here is kvm_pvm, which runs ring-3 CPUID on the host CPU: user code sees the "
                "host's vendor, not our CPUID table",
    LINUX_RING0: "KVM here is kvm_pvm, without VT-x or AMD-V: it emulates guest ring 0 at about "
                 "1 M instructions/s and fails on instructions Linux uses (shared notes)",
    SYSCALL_RING0: "KVM here is kvm_pvm, where `syscall` reaches LSTAR still at CPL 3 (the guest "
                   "kernel completes it from its #GP/#PF handler)",
    SW_BREAKPOINTS: "KVM here is kvm_pvm, where int3 in ring 0 is an emulation failure and in ring 3 "
                    "goes to the guest's own #BP handler (the debugger uses the debug registers)",
    USER_DEBUG: "KVM here is kvm_pvm, which runs ring 3 natively on the host: single-steps and "
                "debug-register breakpoints do not fire there",
}
_AMD_LACKS = {
    REGISTERS_AFTER_SHUTDOWN: "KVM here is kvm_amd, which INITs the vCPU on a shutdown (triple "
                              "fault) intercept: the faulting registers are lost",
}
_NO_NRIPS_LACKS = {
    STEP_MODE_SWITCH: "KVM here is kvm_amd on a CPU without NRIPS (as QEMU 7.2's TCG emulates it): "
                      "single-stepping the wrmsr that sets EFER.LME loses the step (measured: a trace "
                      "of the kernel's boot stops there, or the vCPU hangs)",
}

_cache = None


def missing() -> dict:
    """{feature: reason} for the features this host's KVM lacks (empty on VT-x). Computed
    once per process: a tiny VM checks the debug registers (a few ms; KVM must be usable)."""
    global _cache
    if _cache is None:
        _cache = lacks(os.path.exists, _read, breakpoints_stop_a_guest, tsc_probe=guest_tsc_is_set)
    return dict(_cache)


def lacks(module_present, read, probe, tsc_probe=lambda: {}) -> dict:
    """missing()'s rules, given how to look for a module, read a parameter and run the probes
    (probe(int3) -> {feature: reason} of the breakpoint kinds that do not stop a guest;
    tsc_probe() -> {TSC_SET: reason} where the guest's TSC cannot be set)."""
    found = {}
    pvm = module_present(PVM_MODULE)
    if pvm:
        found.update(_PVM_LACKS)
    elif module_present(AMD_MODULE):
        found.update(_AMD_LACKS)
        if read(AMD_NRIPS) in ("0", "N"):
            found.update(_NO_NRIPS_LACKS)
    for feature, reason in probe(int3=not pvm).items():
        found.setdefault(feature, reason)
    found.update(tsc_probe())
    if SW_BREAKPOINTS in found and HW_BREAKPOINTS in found:
        found[BREAKPOINTS] = ("neither int3 nor the debug registers stop the guest here: breakpoints are "
                              "found by single-stepping, which KVM does with the guest's TF, lost where the "
                              "guest reloads RFLAGS (iretq to ring 3, syscall)")
    return found


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


# The probe guest, in real mode: `nop; int3; hlt` at PROBE_CODE_ADDR, and a #BP handler (the
# interrupt vector table's entry 3) that is a `hlt` of its own.
PROBE_CODE_ADDR = 0x1000
PROBE_CODE = bytes([0x90, 0xCC, 0xF4])
PROBE_BP_HANDLER = 0x1010
PROBE_IVT_ENTRY_3 = 3 * 4                   # offset:segment of vector 3
_TCG = "as where KVM is nested in QEMU 7.2's TCG, "


def breakpoints_stop_a_guest(int3: bool = True) -> dict:
    """{feature: reason} for the breakpoint kinds that do not stop a tiny real-mode guest:
    HW_BREAKPOINTS (DR0 on its `nop`: a KVM_EXIT_DEBUG must come first) and, with `int3`,
    SW_BREAKPOINTS (KVM_GUESTDBG_USE_SW_BP: its int3 must exit to us, not reach its handler).
    QEMU 7.2's TCG fails both when it emulates the SVM a KVM runs on: its VMRUN loads DR7
    without arming the breakpoints, and it raises INT3 as a software interrupt, so the #BP
    intercept KVM asks for never fires."""
    from .. import layout
    from ..arch.x86.debug_registers import DR7_FIXED, DR7_G0, DR7_GE
    from ..arch.x86.exceptions import BP, DB
    from ..errors import VmmError
    from ..kvm import Kvm
    from ..kvm import constants as kc
    from ..kvm import structs as ks
    from ..kvm.vm import bare_real_mode_vcpu
    from ..memory import GuestMemory
    checks = [(HW_BREAKPOINTS, ks.KVM_GUESTDBG_USE_HW_BP, DB, "a debug-register breakpoint",
               _TCG + "whose VMRUN does not arm DR7")]
    if int3:
        checks.append((SW_BREAKPOINTS, ks.KVM_GUESTDBG_USE_SW_BP, BP, "an int3 under KVM_GUESTDBG_USE_SW_BP",
                       _TCG + "which raises INT3 as a software interrupt, past KVM's #BP intercept"))
    dr7 = DR7_FIXED | DR7_GE | DR7_G0           # DR0: an execution breakpoint
    found = {}
    try:
        with GuestMemory(64 * layout.KiB) as memory, Kvm() as kvm, kvm.create_vm() as vm:
            memory.write(PROBE_CODE_ADDR, PROBE_CODE)
            memory.write(PROBE_BP_HANDLER, b"\xf4")
            memory.write(PROBE_IVT_ENTRY_3, PROBE_BP_HANDLER.to_bytes(2, "little") + bytes(2))
            vcpu = bare_real_mode_vcpu(vm, memory, layout.KVM_TSS_ADDR)
            for feature, flag, vector, what, why in checks:
                regs = vcpu.get_regs()
                regs.rip, regs.rflags = PROBE_CODE_ADDR, 2
                vcpu.set_regs(regs)
                vcpu.set_guest_debug(ks.KVM_GUESTDBG_ENABLE | flag, [PROBE_CODE_ADDR, 0, 0, 0, 0, 0, 0, dr7])
                reason = kc.KVM_EXIT_INTR if vcpu.run() else vcpu.exit_reason
                if reason != kc.KVM_EXIT_DEBUG or vcpu.debug_exit()[0] != vector:
                    found[feature] = f"{what} did not stop the guest (KVM exit {kc.exit_name(reason)}), {why}"
                vcpu.set_guest_debug(0)
    except (VmmError, OSError) as error:
        for feature, *_ in checks:
            found[feature] = f"the breakpoint probe could not run: {error}"
    return found


TSC_PROBE_VALUE = 1 << 32                   # a TSC far below any host's after boot
TSC_PROBE_SLACK = 1 << 31                   # what a few ms of the probe itself may add


def guest_tsc_is_set() -> dict:
    """{TSC_SET: reason} unless a vCPU's TSC reads what the snapshot code sets it to
    (kvm_snapshot._set_tsc: the TSC offset attribute, else a write of IA32_TSC)."""
    from ..arch.x86.cpu_snapshot import IA32_TSC
    from ..errors import VmmError
    from ..kvm import Kvm
    from .kvm_snapshot import _set_tsc
    try:
        with Kvm() as kvm, kvm.create_vm() as vm:
            vcpu = vm.create_vcpu(0)
            _set_tsc(vcpu, TSC_PROBE_VALUE)
            tsc = vcpu.get_msrs([IA32_TSC])[IA32_TSC]
    except (VmmError, OSError, KeyError) as error:
        return {TSC_SET: f"the TSC probe could not run: {error}"}
    if abs(tsc - TSC_PROBE_VALUE) <= TSC_PROBE_SLACK:
        return {}
    pvm = " (kvm_pvm: the guest's TSC is the host's)" if os.path.exists(PVM_MODULE) else ""
    return {TSC_SET: f"this KVM keeps its own guest TSC{pvm}: set to {TSC_PROBE_VALUE:#x}, it read {tsc:#x}, "
                     "so a restored or resumed guest sees the time that passed (from a software-engine "
                     "snapshot, the host's uptime)"}
