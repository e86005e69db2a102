"""Where `vmm run`'s start-up goes, for `vmm bench startup` (startup.py has the timing table):

- the import budget per engine: the modules a `vmm run` of `hello` imports and their import
  time, from `python -X importtime` (started as the `vmm` launcher starts Python: -I -S), so
  that a new import shows as a number; tests/test_import_budget.py holds the list itself;
- the phases per engine, as `vmm run --stats` reports them (interpreter, imports, engine,
  VM set-up, guest, teardown);
- the issue's goals, read from the timing table: vmm run on KVM at most 0.5x QEMU microvm on
  KVM (stretch 0.35x), vmm run on unicorn at most 1.0x QEMU microvm TCG, the in-process
  Machine at most 1.0x the in-process container launcher, and vmm run's peak RSS below 20 MiB.

Each measurement runs `runs` times; the medians are reported. -X importtime adds its own
overhead (about 10% here), so its milliseconds are a little above what a plain run spends.
"""
import statistics
import subprocess
import sys

from .. import paths
from ..launcher import launcher_text
from .harness import ratio

ENGINES = ("kvm", "unicorn")
PHASES = ("interpreter", "imports", "engine", "VM set-up", "guest", "teardown")
RSS_LIMIT_KIB = 20 * 1024
TIMEOUT = 120


def _vmm_argv(engine: str, *extra) -> list:
    """`vmm run` of hello on `engine`, as the launcher runs it, with `extra` Python options."""
    code = launcher_text().split("\n", 1)[1]            # (without its #! line)
    return [sys.executable, "-I", "-S", *extra, "-c", code, "run", "--accel", engine, "--initrd",
            paths.DEFAULT_PROGRAM, "--serial", "none"]


def parse_importtime(stderr: str) -> dict:
    """{"modules": count, "seconds": sum of self times, "vmm_modules", "vmm_seconds"} from
    `-X importtime` lines: `import time: SELF | CUMULATIVE | NAME` (microseconds)."""
    modules = vmm_modules = 0
    total = vmm_total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = line[len("import time:"):].split("|")
        name, self_us = name.strip(), int(self_us)
        modules += 1
        total += self_us
        if name == "vmm" or name.startswith("vmm."):
            vmm_modules += 1
            vmm_total += self_us
    return {"modules": modules, "seconds": total / 1e6, "vmm_modules": vmm_modules, "vmm_seconds": vmm_total / 1e6}


def parse_phases(stderr: str) -> dict:
    """{phase: seconds} from `vmm run --stats` (its `  NAME  N.N ms  note` lines)."""
    found = {}
    for line in stderr.splitlines():
        for phase in PHASES:
            if line.startswith(f"  {phase} ") and " ms " in line + " ":
                found[phase] = float(line[len(phase) + 2:].split("ms")[0]) / 1000
    return found


def _run(argv) -> str:
    proc = subprocess.run(argv, capture_output=True, stdin=subprocess.DEVNULL, timeout=TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"exit status {proc.returncode}: {proc.stderr.decode(errors='replace')[-300:]}")
    return proc.stderr.decode(errors="replace")


def measure(engines=ENGINES, runs: int = 3) -> dict:
    """{engine: {"imports": {...medians}, "phases": {phase: median seconds}} or {"error": why}}."""
    from ..machine import probe
    out = {}
    for engine in engines:
        reason = probe(engine)
        if reason is not None:
            out[engine] = {"error": f"not available: {reason}"}
            continue
        try:
            imports = [parse_importtime(_run(_vmm_argv(engine, "-X", "importtime"))) for _ in range(runs)]
            phases = [parse_phases(_run(_vmm_argv(engine) + ["--stats"])) for _ in range(runs)]
        except (RuntimeError, OSError, subprocess.TimeoutExpired, ValueError) as error:
            out[engine] = {"error": str(error)}
            continue
        out[engine] = {
            "imports": {key: statistics.median(sample[key] for sample in imports) for key in imports[0]},
            "phases": {phase: statistics.median(sample.get(phase, 0.0) for sample in phases) for phase in PHASES},
        }
    return out


def goals(rows: list) -> list:
    """The issue's goals from the timing table's rows: [{"what", "value", "limit", "met"}]."""
    by_name = {row["name"]: row for row in rows}

    def median(name):
        row = by_name.get(name)
        return row["seconds"]["median"] if row and row.get("seconds") else None

    def rss(name):
        row = by_name.get(name)
        return row["rss_kib"]["median"] if row and row.get("rss_kib") else None

    def goal(what, value, limit, unit="x"):
        return {"what": what, "value": value, "limit": limit, "unit": unit,
                "met": None if value is None else value <= limit}
    return [
        goal("vmm run on KVM / QEMU microvm on KVM", ratio(median("vmm-kvm"), median("qemu-kvm")), 0.5),
        goal("  stretch", ratio(median("vmm-kvm"), median("qemu-kvm")), 0.35),
        goal("vmm run on unicorn / QEMU microvm TCG", ratio(median("vmm-unicorn"), median("qemu-tcg")), 1.0),
        goal("Machine in-process (KVM) / run_container() in-process", ratio(median("api-kvm"),
                                                                            median("container-api")), 1.0),
        goal("Machine in-process (unicorn) / run_container() in-process", ratio(median("api-unicorn"),
                                                                                median("container-api")), 1.0),
        goal(f"peak RSS of vmm run on KVM (QEMU microvm KVM: "
             f"{'n/a' if rss('qemu-kvm') is None else format(rss('qemu-kvm') / 1024, '.1f')} MiB)",
             None if rss("vmm-kvm") is None else rss("vmm-kvm") / 1024, RSS_LIMIT_KIB / 1024, " MiB"),
    ]


def format_budget(budget: dict, goal_list: list) -> str:
    lines = ["where `vmm run` of hello spends its start-up (medians; imports from python -X importtime; "
             "phases from vmm run --stats):"]
    for engine, entry in budget.items():
        if "error" in entry:
            lines.append(f"  {engine}: {entry['error']}")
            continue
        imports, phases = entry["imports"], entry["phases"]
        lines.append(f"  {engine}: {imports['modules']:.0f} modules imported in {imports['seconds'] * 1000:.1f} ms "
                     f"(vmm's own: {imports['vmm_modules']:.0f} in {imports['vmm_seconds'] * 1000:.1f} ms)")
        lines.append("    " + " + ".join(f"{phase} {phases[phase] * 1000:.1f}" for phase in PHASES)
                     + f" = {sum(phases.values()) * 1000:.1f} ms")
    lines.append("")
    lines.append("goals:")
    for goal in goal_list:
        if goal["value"] is None:
            lines.append(f"  {goal['what']}: not measurable (a row is missing)")
            continue
        value = f"{goal['value']:.2f}{goal['unit']}" if goal["unit"] == "x" else f"{goal['value']:.1f}{goal['unit']}"
        limit = f"{goal['limit']:.2f}{goal['unit']}" if goal["unit"] == "x" else f"{goal['limit']:.0f}{goal['unit']}"
        lines.append(f"  {goal['what']}: {value} (at most {limit}): {'met' if goal['met'] else 'NOT met'}")
    return "\n".join(lines)
