"""The Linux benchmark: Debian's stock kernel with the test initramfs (guest/build/linux),
booted to its init script and powered off, on each engine and under QEMU microvm (TCG).

Every run is a process launched from here and timed from just before the launch, with two
marks read from its console output as it streams: the init script's first line ("vmmtest: boot
reached the init script", printed by /scripts/boot after /init loaded the virtio modules) and
the process's exit after `poweroff -f`. The same kernel, initramfs and command line for every
row: ours are the VMM's Linux defaults; QEMU's guest also gets tsc_early_khz, the TSC rate our
CPUID leaf 0x15 tells ours, so that neither calibrates against the PIT. Rows interleave round
robin after one warm-up round; an engine that cannot run Linux here says why.

Goal (issue 14): the unicorn engine within 2x QEMU TCG's time, to the first line and to
power-off.

    vmm bench linux [--runs 3] [--json PATH]
"""
import shutil
import subprocess
import time

from .. import paths
from ..config import LINUX_CMDLINE
from . import harness
from .harness import (OK, UNAVAILABLE, Row, RunFailed, Unavailable, describe_machine, engine_unavailable,
                      interleave, progress_printer, spread, status_text)
from .process import vmm_command, vmm_env

DEFAULT_RUNS = 3
RUN_TIMEOUT = 600.0
SCRIPT = "boot"
FIRST_LINE = b"vmmtest: boot reached the init script"
GOAL_RATIO = 2.0
KERNEL = paths.GUEST_BUILD / "linux" / "vmlinuz"
INITRAMFS = paths.GUEST_BUILD / "linux" / "initramfs.cpio.gz"


def timed_boot(argv, label, env=None) -> dict:
    """Launch `argv`, read its output until it exits: seconds to FIRST_LINE and to exit."""
    start = time.monotonic()
    process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               env=env)
    first, output = None, b""
    try:
        for line in process.stdout:
            output += line
            if first is None and FIRST_LINE in line:
                first = time.monotonic() - start
            if time.monotonic() - start > RUN_TIMEOUT:
                raise RunFailed(f"{label} did not power off within {RUN_TIMEOUT:.0f} s")
        status = process.wait(timeout=RUN_TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
    end = time.monotonic() - start
    if first is None:
        raise RunFailed(f"{label} never reached the init script (status {status}): "
                        f"{output[-200:].decode(errors='replace')!r}")
    return {"first_line": first, "poweroff": end, "status": status}


class VmmLinux(Row):
    def __init__(self, engine):
        self.engine = engine
        self.name = f"vmm-{engine}"
        self.label = f"vmm run, {engine}"

    def prepare(self, context):
        reason = engine_unavailable(self.engine)
        if reason is None:
            from ..machine import engine_class
            reason = engine_class(self.engine).missing_features().get("linux-ring0")
        if reason:
            raise Unavailable(reason)

    def measure(self, context):
        sample = timed_boot([*vmm_command(), "run", str(KERNEL), "--initrd", str(INITRAMFS),
                             "--accel", self.engine, "--cmdline", f"{LINUX_CMDLINE} vmmtest={SCRIPT}"],
                            self.label, env=vmm_env())
        if sample["status"] != 0:
            raise RunFailed(f"{self.label} exited with status {sample['status']}, not 0 (power-off)")
        return sample


class QemuLinux(Row):
    name = "qemu-tcg"
    label = "QEMU microvm, TCG"

    def prepare(self, context):
        self.qemu = shutil.which("qemu-system-x86_64")
        if self.qemu is None:
            raise Unavailable("qemu-system-x86_64 not installed (make peers)")
        from ..engines.unicorn import UnicornEngine
        self.tsc_khz = UnicornEngine.tsc_khz()

    def measure(self, context):
        return timed_boot([self.qemu, "-M", "microvm,acpi=on,rtc=on", "-accel", "tcg", "-m", "256M",
                           "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
                           "-kernel", str(KERNEL), "-initrd", str(INITRAMFS),
                           "-append", f"{LINUX_CMDLINE} tsc_early_khz={self.tsc_khz} vmmtest={SCRIPT}"],
                          self.label)


def run(runs: int = DEFAULT_RUNS, warmup: int = 1, rows=None, progress=None) -> dict:
    missing = [str(p) for p in (KERNEL, INITRAMFS) if not p.exists()]
    if missing:
        from ..errors import InputError
        raise InputError(f"{', '.join(missing)} not built: run `make build`, which fetches Debian's kernel")
    rows = rows or [VmmLinux("unicorn"), VmmLinux("kvm"), QemuLinux()]
    state = interleave(rows, runs, warmup=warmup, progress=progress, part="linux")
    result = {"machine": describe_machine(), "runs": runs, "warmup": warmup, "rows": []}
    for row in rows:
        entry = state[row.name]
        out = {"name": row.name, "label": row.label, "status": entry["status"], "reason": entry["reason"]}
        if entry["status"] == OK:
            for key in ("first_line", "poweroff"):
                out[key] = harness.summary(s[key] for s in entry["samples"])
        result["rows"].append(out)
    qemu = next((r for r in result["rows"] if r["name"] == "qemu-tcg" and r["status"] == OK), None)
    for row in result["rows"]:
        for key in ("first_line", "poweroff"):
            if qemu is not None and key in row:
                row[f"{key}_ratio"] = harness.ratio(row[key]["median"], qemu[key]["median"])
    return result


def format_report(result: dict) -> str:
    notes = []
    rows = []
    for row in result["rows"]:
        status = status_text(row, notes)
        rows.append([row["label"], status, spread(row.get("first_line"), fmt="{:.2f}"),
                     _ratio(row.get("first_line_ratio")), spread(row.get("poweroff"), fmt="{:.2f}"),
                     _ratio(row.get("poweroff_ratio"))])
    text = [f"vmm bench linux: Debian's kernel to its init script and to power-off, {result['runs']} runs "
            f"(seconds, median (min-max), and the ratio to QEMU TCG)",
            harness.table(["row", "status", "to init script", "x QEMU", "to power-off", "x QEMU"], rows)]
    unicorn = next((r for r in result["rows"] if r["name"] == "vmm-unicorn"), {})
    if "first_line_ratio" in unicorn and "poweroff_ratio" in unicorn:
        worst = max(unicorn["first_line_ratio"], unicorn["poweroff_ratio"])
        verdict = "met" if worst <= GOAL_RATIO else "NOT met"
        text.append(f"goal: unicorn within {GOAL_RATIO:g}x QEMU TCG: {verdict} ({worst:.1f}x)")
    text.extend(notes)
    return "\n".join(text)


def _ratio(value) -> str:
    return "" if value is None else f"{value:.1f}x"


def main(runs: int = DEFAULT_RUNS, json_path=None) -> int:
    result = run(runs=runs, progress=progress_printer)
    failed = any(r["status"] not in (OK, UNAVAILABLE) for r in result["rows"])
    return harness.report(result, format_report(result), json_path=json_path, failed=failed)
