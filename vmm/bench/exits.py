"""The exits benchmark: port-I/O exits per second, a bare ctypes loop against the VMM's real path.

Both sides run the same guest, a PVH kernel of a few instructions built here (pvh_kernel()):
entered in 32-bit protected mode at 1 MiB, it writes `n_exits` bytes to COM1's transmit
register in a loop (`out %al,%dx; dec %ecx; jnz`), then 0 to the debug-exit port.
- bare: the least a Python VMM can do. A VM of its own with the same in-kernel irqchip and
  PIT as the VMM's, the same entry state, and a loop of KVM_RUN plus an exit-reason check.
- vmm: the real path every guest byte takes: Machine (the API `vmm run` uses) boots the same
  kernel file, and each exit goes KvmEngine -> PortBus -> the Uart16550's transmitter -> the
  serial sink (capturing, --serial none), with every device of the machine registered. Its
  time is the run alone (RunResult.stats["run_seconds"]), without the machine's set-up.
The ratio of their medians is the cost of the VMM's exit handling; the goal (issue 2) is
at least 80% of the bare loop. Runs are interleaved (bare, vmm, bare, vmm...) so that
drifts in the host's speed hit both sides alike.

    python -m vmm.bench.exits [--runs 5] [--exits 20000]
"""
import argparse
import os
import struct
import time

from .. import layout
from ..arch.x86 import pvh
from ..engines import kvm_state
from ..errors import CHECKS_FAILED, AcceleratorUnavailable
from ..kvm import Kvm, constants as kc
from ..kvm.ioctl import raw_ioctl
from ..kvm.ioctl_numbers import KVM_RUN
from ..kvm.structs import KVM_PIT_SPEAKER_DUMMY
from ..kvm.vcpu import EXIT_REASON_U32
from ..memory import GuestMemory
from ..scratch import scratch_folder
from .harness import FAILED, OK, Row, RunFailed, interleave, status_text, summary

GOAL = 0.80                               # issue 2: the VMM path at >= 80% of the bare loop
MEM_SIZE = 4 * layout.MiB
ENTRY = 0x100000                          # 1 MiB, where a PVH kernel is linked
ELF_HEADERS = struct.Struct("<16sHHIIIIIHHHHHH")
ELF_PHDR = struct.Struct("<IIIIIIII")


def guest_code(n_exits: int) -> bytes:
    """32-bit code: n_exits bytes to COM1's transmit register, then 0 to the debug-exit port."""
    return (b"\xb9" + struct.pack("<I", n_exits)                     # mov $n, %ecx
            + b"\x66\xba" + struct.pack("<H", layout.COM1_PORT)      # mov $0x3f8, %dx
            + b"\xb0\x55"                                            # mov $0x55, %al
            + b"\xee\x49\x75\xfc"                                    # 1: out %al,%dx; dec %ecx; jnz 1b
            + b"\xb0\x00\xe6" + bytes([layout.DEBUG_EXIT_PORT])      # mov $0, %al; out %al, $0xf4
            + b"\xf4")                                               # hlt


def pvh_kernel(code: bytes) -> bytes:
    """An ELF32 with `code` loaded at ENTRY and the PVH entry note (Xen's PHYS32_ENTRY) naming it."""
    note = struct.pack("<III4sI", 4, 4, pvh.XEN_ELFNOTE_PHYS32_ENTRY, b"Xen\0", ENTRY)
    phoff, code_at = ELF_HEADERS.size, ELF_HEADERS.size + 2 * ELF_PHDR.size
    note_at = code_at + len(code)
    header = ELF_HEADERS.pack(b"\x7fELF\x01\x01\x01" + bytes(9), 2, 3, 1, ENTRY, phoff, 0, 0, ELF_HEADERS.size,
                              ELF_PHDR.size, 2, 0, 0, 0)
    load = ELF_PHDR.pack(1, code_at, ENTRY, ENTRY, len(code), len(code), 5, 0x1000)         # PT_LOAD, r-x
    note_header = ELF_PHDR.pack(4, note_at, 0, 0, len(note), len(note), 4, 4)             # PT_NOTE
    return header + load + note_header + code + note


def bare_kvm_loop(n_exits: int) -> float:
    """Exits per second of a minimal KVM_RUN loop on the same guest, state and irqchip."""
    with GuestMemory(MEM_SIZE) as memory, Kvm() as kvm, kvm.create_vm() as vm:
        memory.write(ENTRY, guest_code(n_exits))
        memory.write(layout.BOOT_GDT_ADDR, pvh.boot_gdt_bytes())
        vm.set_tss_addr(layout.KVM_TSS_ADDR)
        vm.create_irqchip()
        vm.create_pit2(KVM_PIT_SPEAKER_DUMMY)
        vm.set_user_memory_region(0, 0, memory.size, memory.host_address)
        vcpu = vm.create_vcpu(0)
        kvm_state.set_state(vcpu, pvh.entry_state(ENTRY, layout.PVH_INFO_START))
        fd, u32, ioctl, io = vcpu.fd, vcpu.u32, raw_ioctl, kc.KVM_EXIT_IO
        exits = 0
        start = time.perf_counter()
        while exits < n_exits:
            ioctl(fd, KVM_RUN, 0)
            if u32[EXIT_REASON_U32] != io:
                break
            exits += 1
        elapsed = time.perf_counter() - start
        ioctl(fd, KVM_RUN, 0)               # the debug-exit write (untimed)
        port = vcpu.snapshot().io.port
        if exits != n_exits or u32[EXIT_REASON_U32] != io or port != layout.DEBUG_EXIT_PORT:
            raise RunFailed(f"bare loop: {exits} port exits, then exit {u32[EXIT_REASON_U32]} (port {port:#x})")
        return n_exits / elapsed


def vmm_loop(n_exits: int, kernel_path: str) -> float:
    """Exits per second of the same guest booted by Machine (module docstring)."""
    from ..config import MachineConfig
    from ..machine import Machine
    config = MachineConfig(kernel=kernel_path, accel="kvm", serial="none", mem_size=MEM_SIZE, timeout=300)
    with Machine(config) as vm:
        result = vm.run()
    if (result.reason, result.status) != ("debug-exit", 0) or result.serial != b"U" * n_exits:
        raise RunFailed(f"VMM: {len(result.serial)} serial bytes, then {result.reason}: {result.detail}")
    return n_exits / result.stats["run_seconds"]


class LoopRow(Row):
    """One of the two loops, measured in exits per second."""

    def __init__(self, name, label, loop):
        self.name, self.label, self.loop = name, label, loop

    def measure(self, context):
        return self.loop(context["n_exits"], *context["args"].get(self.name, ()))


def run(runs: int = 5, n_exits: int = 20000) -> dict:
    """Interleaved runs of both loops (bare, vmm, bare, vmm...): {"bare": {min, median, max},
    "vmm": {...}, "ratio": vmm median / bare median, "goal", "runs", "n_exits", "rows"}."""
    rows = [LoopRow("bare", "bare ctypes KVM_RUN loop", bare_kvm_loop),
            LoopRow("vmm", "VMM: Machine, PortBus, 16550A transmitter, serial sink", vmm_loop)]
    with scratch_folder("bench-exits") as folder:
        kernel = os.path.join(folder, "exits.elf")
        with open(kernel, "wb") as file:
            file.write(pvh_kernel(guest_code(n_exits)))
        state = interleave(rows, runs, warmup=1, context={"n_exits": n_exits, "args": {"vmm": (kernel,)}})
    result = {"runs": runs, "n_exits": n_exits, "rows": []}
    for row in rows:
        entry = state[row.name]
        ok = entry["status"] == OK
        result[row.name] = summary(entry["samples"]) if ok else None
        result["rows"].append({"name": row.name, "label": row.label, "status": entry["status"],
                               "reason": entry["reason"]})
    ratio = result["vmm"]["median"] / result["bare"]["median"] if result["vmm"] and result["bare"] else None
    result["ratio"] = ratio
    result["goal"] = {"what": f"the VMM path >= {GOAL:.0%} of the bare loop", "ratio": ratio,
                      "met": None if ratio is None else ratio >= GOAL}
    return result


def format_table(result: dict) -> str:
    lines = [f"port-I/O exits per second ({result['runs']} runs of {result['n_exits']} exits, interleaved, "
             "after one warm-up round)", f"{'path':<56}{'min':>10}{'median':>10}{'max':>10}"]
    notes = []
    for row in result["rows"]:
        numbers = result[row["name"]]
        if numbers is None:
            lines.append(f"{row['label']:<56}{status_text(row, notes):>30}")
            continue
        lines.append(f"{row['label']:<56}{numbers['min']:>10,.0f}{numbers['median']:>10,.0f}{numbers['max']:>10,.0f}")
    goal = result["goal"]
    if goal["ratio"] is not None:
        lines.append(f"goal: {goal['what']}: {goal['ratio']:.1%}, {'met' if goal['met'] else 'NOT met'}")
    return "\n".join(lines + notes)


def main(runs: int = 5, count: int = 20000) -> int:
    """Print the table (what `vmm bench exits` runs); AcceleratorUnavailable (69) without KVM."""
    from ..machine import probe
    reason = probe("kvm")               # as Machine decides (VMM_NO_KVM too): the VMM row runs through it
    if reason is not None:
        raise AcceleratorUnavailable(f"bench exits needs KVM: {reason}")
    result = run(runs, count)
    print(format_table(result))
    return CHECKS_FAILED if any(row["status"] == FAILED for row in result["rows"]) else 0


def _cli(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--exits", type=int, default=20000)
    args = parser.parse_args(argv)
    return main(args.runs, args.exits)


if __name__ == "__main__":
    raise SystemExit(_cli())
