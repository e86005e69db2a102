"""What every benchmark shares: rows and their statuses, interleaved runs, progress, the
numbers (min/median/max, ratios), plain-text tables and bars, JSON output, and a description
of the machine. No benchmark logic; starting processes is process.py's job.

A benchmark is a list of rows, each one way of doing the same work (ours, and its baselines).
interleave() runs every row `runs` times, round-robin, after `warmup` uncounted rounds, so
that drifts in the host's speed hit every row alike. A row whose tool or engine is missing
is UNAVAILABLE and stays in the table with the reason; a row whose run goes wrong is FAILED
and says why instead of giving a time (a benchmark then exits 1).
"""
import os
import platform
import shutil
import statistics
import subprocess
import sys

from ..errors import CHECKS_FAILED

OK, UNAVAILABLE, FAILED = "ok", "unavailable", "failed"
KVM_MODULES = ("kvm", "kvm_intel", "kvm_amd", "kvm_pvm")
CGROUP_V2_HYBRID = "/sys/fs/cgroup/unified"


class Unavailable(Exception):
    """The row's tool is missing or cannot run here."""


class RunFailed(Exception):
    """A run ended with the wrong output or exit status."""


class Row:
    """One way of doing a part's work. prepare() raises Unavailable; measure() returns one
    run's sample or raises RunFailed/Unavailable; close() releases what prepare() made."""
    name = ""
    label = ""

    def prepare(self, context) -> None:
        pass

    def measure(self, context):
        raise NotImplementedError

    def close(self) -> None:
        pass


def interleave(rows, runs: int, warmup: int = 1, context=None, progress=None, part: str = "",
               sample=lambda row, context: row.measure(context)) -> dict:
    """Measure every row `runs` times, round-robin, after `warmup` uncounted rounds:
    {name: {"status", "reason", "samples": [one per counted run]}}. A row's prepare() or
    sample() may raise Unavailable or RunFailed; every row is closed at the end.
    `progress(part, round_number, warmup, runs)` is called after each round."""
    context = {} if context is None else context
    state = {row.name: {"status": OK, "reason": None, "samples": []} for row in rows}
    try:
        for row in rows:
            try:
                row.prepare(context)
            except Unavailable as error:
                state[row.name].update(status=UNAVAILABLE, reason=str(error))
            except RunFailed as error:
                state[row.name].update(status=FAILED, reason=str(error))
        for round_number in range(warmup + runs):
            for row in rows:
                entry = state[row.name]
                if entry["status"] != OK:
                    continue
                try:
                    value = sample(row, context)
                except Unavailable as error:
                    entry.update(status=UNAVAILABLE, reason=str(error))
                    continue
                except RunFailed as error:
                    entry.update(status=FAILED, reason=str(error))
                    continue
                if round_number >= warmup:
                    entry["samples"].append(value)
            if progress:
                progress(part, round_number, warmup, runs)
    finally:
        for row in rows:
            row.close()
    return state


def progress_printer(part, round_number, warmup, runs) -> None:
    """interleave()'s progress on stderr: `  part: run 2/5 done`."""
    what = "warm-up" if round_number < warmup else f"run {round_number - warmup + 1}/{runs}"
    print(f"  {part + ': ' if part else ''}{what} done", file=sys.stderr, flush=True)


def engine_unavailable(accel: str) -> str | None:
    """Why Machine(accel=...) cannot run here, or None. (An engine module that does not
    import is a bug, not an unavailable engine: its ImportError goes up.)"""
    from ..machine import probe
    return probe(accel)


def require_guest(*programs) -> None:
    """InputError unless the guest kernel and these programs are built."""
    from .. import paths
    from ..errors import InputError
    for path, what in ((paths.DEFAULT_KERNEL, "guest kernel"),
                       *((paths.program_path(p), "guest program") for p in programs)):
        if not os.path.exists(path):
            raise InputError(f"{what} {path} is not built: run `make` (or `make -C guest`)")


# --- numbers and text -------------------------------------------------------------------------
def summary(values) -> dict:
    """{"min", "median", "max"} of a non-empty sequence of numbers."""
    values = list(values)
    return {"min": min(values), "median": statistics.median(values), "max": max(values)}


def ratio(value, baseline):
    """value / baseline, or None when either is missing or the baseline is zero."""
    if value is None or not baseline:
        return None
    return value / baseline


def ms(seconds) -> str:
    return "" if seconds is None else f"{seconds * 1000:.1f}"


def pct(value) -> str:
    return "" if value is None else f"{value:.1%}"


def spread(summary, scale=1.0, fmt="{:.1f}") -> str:
    """'median (min-max)' of a summary, scaled, or ''."""
    if summary is None:
        return ""
    return (f"{fmt.format(summary['median'] * scale)} ({fmt.format(summary['min'] * scale)}-"
            f"{fmt.format(summary['max'] * scale)})")


def goal_text(goal: dict) -> str:
    """`goal: WHAT: 56.0%, met` for a {"what", "ratio", "met"} goal (ratio None: a row is missing)."""
    if goal["ratio"] is None:
        return f"goal: {goal['what']}: not measurable ({goal.get('note') or 'a row is missing'})"
    return f"goal: {goal['what']}: {goal['ratio']:.1%}, {'met' if goal['met'] else 'NOT met'}"


def status_text(row: dict, notes: list) -> str:
    """'ok', or 'not available [n]' / 'FAILED [n]' with the reason appended to `notes`."""
    if row["status"] == OK:
        return "ok"
    word = "not available" if row["status"] == UNAVAILABLE else "FAILED"
    notes.append(f"[{len(notes) + 1}] {row['label']}: {word}: {row['reason']}")
    return f"{word} [{len(notes)}]"


def table(headers, rows, align=None) -> str:
    """A plain-text table: `headers` and each row are sequences of strings (None prints as "").

    `align` is a string with one "<" or ">" per column (default: first column left, the rest right).
    """
    align = align or "<" + ">" * (len(headers) - 1)
    cells = [[("" if cell is None else str(cell)) for cell in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row):
        return "  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(row, align, widths)).rstrip()
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def bars(items, width: int = 50, unit: str = "", fmt: str = "{:.1f}") -> str:
    """A horizontal bar chart: `items` is [(label, value or None, note)], value None prints the note.

    Bars share one linear scale, the largest value filling `width` characters.
    """
    items = list(items)
    largest = max((value for _, value, _ in items if value is not None), default=0)
    label_width = max((len(label) for label, _, _ in items), default=0)
    lines = []
    for label, value, note in items:
        if value is None:
            lines.append(f"{label:<{label_width}}  ({note})")
            continue
        length = round(width * value / largest) if largest else 0
        bar = "#" * max(length, 1 if value > 0 else 0)
        lines.append(f"{label:<{label_width}}  {bar} {fmt.format(value)}{unit}")
    return "\n".join(lines)


def report(result: dict, text: str, json_path=None, failed: bool = False) -> int:
    """Print a benchmark's table, write its result as JSON if asked, and give the exit
    status: 1 if a row failed (an unavailable row is not a failure)."""
    print(text)
    if json_path:
        write_json(result, json_path)
    return CHECKS_FAILED if failed else 0


def check_json_path(json_path) -> None:
    """Refuse an unusable --json PATH before a long benchmark runs (a folder, a FIFO with no
    reader, a missing folder: 66), by opening it as write_json() will."""
    from ..user_files import open_output
    os.close(open_output(json_path, "--json file"))


def write_json(result: dict, json_path) -> None:
    """The result as JSON at json_path (user_files' output rules; a failed write is 74)."""
    import json
    from ..errors import OutputError
    from ..user_files import open_output
    try:
        with os.fdopen(open_output(json_path, "--json file"), "w") as file:
            json.dump(result, file, indent=2)
            file.write("\n")
    except OSError as error:
        raise OutputError(f"cannot write the --json file {json_path}: {error.strerror}") from None


# --- the machine ----------------------------------------------------------------------------------
def is_hybrid_cgroup_host() -> bool:
    """cgroup v1 controllers plus a v2 mount at /sys/fs/cgroup/unified (crun 1.8 fails there)."""
    try:
        with open("/proc/self/mountinfo") as file:
            for line in file:
                fields = line.split()
                if fields[4] == CGROUP_V2_HYBRID and "cgroup2" in fields[fields.index("-") + 1:]:
                    return True
    except (OSError, ValueError, IndexError):
        pass
    return False


def first_line(argv) -> str | None:
    """The first line a tool prints (its version), or None."""
    try:
        out = subprocess.run(argv, capture_output=True, timeout=20).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = out.strip().splitlines()
    return lines[0].strip() if lines else None


def describe_machine() -> dict:
    """The CPU, kernel, KVM flavour, cgroups and tool versions a result was measured with."""
    cpu_model = None
    try:
        with open("/proc/cpuinfo") as file:
            for line in file:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    modules = [name for name in KVM_MODULES if os.path.isdir(f"/sys/module/{name}")]
    try:
        from importlib.metadata import version
        unicorn = version("unicorn")
    except Exception:                   # not installed
        unicorn = None
    tools = {name: shutil.which(name) for name in ("qemu-system-x86_64", "crun", "runc")}
    return {
        "cpu_model": cpu_model,
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "kvm_modules": modules,
        "kvm": ("PVM (nested, no VT-x/AMD-V: guest ring 0 emulated)" if "kvm_pvm" in modules
                else "Intel VT-x" if "kvm_intel" in modules else "AMD-V" if "kvm_amd" in modules
                else "none"),
        "dev_kvm": os.path.exists("/dev/kvm"),
        "cgroups": "hybrid (v1 + v2 at /sys/fs/cgroup/unified)" if is_hybrid_cgroup_host() else
                   ("v2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "v1"),
        "versions": {
            "python": f"{platform.python_version()} ({sys.executable})",
            "unicorn": unicorn,
            "qemu": first_line([tools["qemu-system-x86_64"], "--version"]) if tools["qemu-system-x86_64"] else None,
            "crun": first_line([tools["crun"], "--version"]) if tools["crun"] else None,
            "runc": first_line([tools["runc"], "--version"]) if tools["runc"] else None,
        },
    }
