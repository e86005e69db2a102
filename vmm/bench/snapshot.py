"""The snapshot benchmark: what a snapshot costs to take, and how fast a VM comes back from one,
against booting it cold.

The guest is `syscalls`, paused at the middle byte of its output (from the UART's output path:
the guest stops at that OUT on KVM, at the end of its translated block on unicorn).
1. save, per engine: vm.snapshot() of the paused VM (the manifest and the sparse memory
   file), in ms, and the snapshot's size: the memory file's length and the disk it takes.
2. restore, in this process, per engine pair (saved on one, restored on either): from the
   start of Machine.restore() to the guest running again (its first serial byte after the
   snapshot point: a few guest instructions after the first) and to the program's exit;
   guest RAM resident just after the restore (pages come from the file as the guest touches
   them); and the baseline, the same program booted cold in this process, to its exit.
3. processes: `vmm restore SNAPSHOT` against a cold `vmm run` of the program, spawn to exit.
Rows are interleaved round-robin after a warm-up round; medians with min and max.
Goal (issue 17): restore to running in under 5 ms in-process on KVM.

    vmm bench snapshot [--runs 10] [--json PATH]
"""
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path

from .. import paths
from ..errors import UsageError
from .harness import (FAILED, OK, Row, RunFailed, Unavailable, describe_machine, engine_unavailable, interleave,
                      progress_printer, report, require_guest, spread, status_text, summary, table)
from .process import build_spawner, run_process, vmm_command, vmm_env

PROGRAM = "syscalls"
ENGINES = ("kvm", "unicorn")
DEFAULT_RUNS = 10
GOAL_SECONDS = 0.005
RUN_TIMEOUT = 120.0


def expected_output() -> bytes:
    from ..guest_tests import load_expectation
    return load_expectation(PROGRAM).output


def machine_config(engine):
    from ..config import MachineConfig
    return MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path(PROGRAM)), accel=engine,
                         serial="none", timeout=RUN_TIMEOUT)


class _Tap:
    """In front of the UART's output callback: notes when the first byte comes, and asks for a
    pause at byte `pause_at` (if given)."""

    def __init__(self, vm, pause_at=None):
        self.vm, self.inner, self.pause_at = vm, vm.uart._output, pause_at
        self.first = None
        self.count = 0
        vm.uart._output = self

    def __call__(self, value):
        self.inner(value)
        self.count += 1
        if self.first is None:
            self.first = time.monotonic()
        if self.count == self.pause_at:
            self.vm.gate.request()


def paused_midway(engine):
    """A Machine running PROGRAM on `engine`, paused at the middle of its output; its run's
    thread. The caller stops and closes it."""
    from ..machine import Machine
    vm = Machine(machine_config(engine))
    _Tap(vm, pause_at=len(expected_output()) // 2)
    thread = threading.Thread(target=vm.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + RUN_TIMEOUT
    while not vm.gate.parked:
        if not thread.is_alive() or time.monotonic() > deadline:
            vm.close()
            raise RunFailed(f"{engine}: {PROGRAM} never reached the middle of its output")
        time.sleep(0.001)
    return vm, thread


def resident_bytes(address: int) -> int | None:
    """RSS of the mapping that starts at `address` (/proc/self/smaps), or None."""
    try:
        with open("/proc/self/smaps") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for i, line in enumerate(lines):
        if line.split("-", 1)[0] == f"{address:x}":
            for field in lines[i + 1:i + 30]:
                if field.startswith("Rss:"):
                    return int(field.split()[1]) * 1024
    return None


class SaveRow(Row):
    def __init__(self, engine):
        self.engine, self.name, self.label = engine, f"save/{engine}", f"saved on {engine}"

    def prepare(self, context):
        reason = engine_unavailable(self.engine)
        if reason:
            raise Unavailable(reason)
        self.folder = tempfile.mkdtemp(prefix="pyvmm-bench-save-")

    def measure(self, context):
        vm, thread = paused_midway(self.engine)
        try:
            path = os.path.join(self.folder, "snapshot")
            saved = vm.snapshot(path)
            info = os.stat(os.path.join(path, "memory"))
            return {"seconds": saved.seconds, "memory_file": info.st_size, "on_disk": info.st_blocks * 512,
                    "manifest": os.path.getsize(os.path.join(path, "manifest.json"))}
        finally:
            vm.stop("benchmark")
            thread.join(RUN_TIMEOUT)
            vm.close()

    def close(self):
        shutil.rmtree(getattr(self, "folder", ""), ignore_errors=True)


class RestoreRow(Row):
    """Restored on `engine` from the snapshot context["snapshots"][saved_on]."""

    def __init__(self, saved_on, engine):
        self.saved_on, self.engine = saved_on, engine
        self.name, self.label = f"restore/{saved_on}/{engine}", f"saved on {saved_on}, restored on {engine}"

    def prepare(self, context):
        for engine in {self.saved_on, self.engine}:
            reason = engine_unavailable(engine)
            if reason:
                raise Unavailable(reason)
        if self.saved_on not in context["snapshots"]:
            raise Unavailable(context["snapshot_errors"].get(self.saved_on, "no snapshot"))

    def measure(self, context):
        from ..machine import Machine
        path, before = context["snapshots"][self.saved_on]
        started = time.monotonic()
        vm = Machine.restore(path, accel=self.engine, serial="none", timeout=RUN_TIMEOUT)
        try:
            ready = time.monotonic()
            resident = resident_bytes(vm.memory.host_address)
            started += time.monotonic() - ready     # (reading smaps is not the restore's time)
            ready = time.monotonic()
            tap = _Tap(vm)
            result = vm.run()
            ended = time.monotonic()
            resident_after = resident_bytes(vm.memory.host_address)
        finally:
            vm.close()
        if before + result.serial != expected_output() or result.exit_status != 0:
            raise RunFailed(f"{self.label}: {result.reason} ({result.detail}), output {result.serial[-80:]!r}")
        return {"restore": ready - started, "running": tap.first - started, "exit": ended - started,
                "resident": resident, "resident_after": resident_after, "ram": vm.config.mem_size}


class ColdRow(Row):
    def __init__(self, engine):
        self.engine, self.name, self.label = engine, f"cold/{engine}", f"cold boot on {engine}"

    def prepare(self, context):
        reason = engine_unavailable(self.engine)
        if reason:
            raise Unavailable(reason)

    def measure(self, context):
        from ..machine import Machine
        started = time.monotonic()
        with Machine(machine_config(self.engine)) as vm:
            tap = _Tap(vm)
            result = vm.run()
        if result.serial != expected_output():
            raise RunFailed(f"{self.label}: {result.detail}")
        return {"running": tap.first - started, "exit": time.monotonic() - started}


class ProcessRow(Row):
    """`vmm restore` of the snapshot saved on `engine`, or (saved_on None) a cold `vmm run`."""

    def __init__(self, engine, restore: bool):
        self.engine, self.restore = engine, restore
        self.name = f"process/{'restore' if restore else 'run'}/{engine}"
        self.label = f"`vmm {'restore' if restore else 'run'}` on {engine}"

    def prepare(self, context):
        reason = engine_unavailable(self.engine)
        if reason:
            raise Unavailable(reason)
        if self.restore and self.engine not in context["snapshots"]:
            raise Unavailable("no snapshot")

    def measure(self, context):
        if self.restore:
            path, before = context["snapshots"][self.engine]
            argv = [*vmm_command(), "restore", path, "--accel", self.engine]
        else:
            before = b""
            argv = [*vmm_command(), "run", "--initrd", PROGRAM, "--accel", self.engine]
        process = run_process(argv, env=vmm_env(), spawner=context.get("spawner"))
        if process.status != 0 or before + bytes(process.output) != expected_output():
            raise RunFailed(f"{self.label}: status {process.status}: {process.stderr_line()}")
        return {"exit": process.seconds}


def all_rows(engines):
    rows = [SaveRow(e) for e in engines]
    rows += [RestoreRow(s, r) for s in engines for r in engines]
    rows += [ColdRow(e) for e in engines]
    rows += [ProcessRow(e, restore) for e in engines for restore in (True, False)]
    return rows


def take_snapshots(engines, folder):
    """One snapshot per engine for the restore rows: {engine: (path, output before it)}."""
    snapshots, errors = {}, {}
    for engine in engines:
        if engine_unavailable(engine):
            continue
        try:
            vm, thread = paused_midway(engine)
        except RunFailed as error:
            errors[engine] = str(error)
            continue
        try:
            path = os.path.join(folder, f"snapshot-{engine}")
            vm.snapshot(path)
            snapshots[engine] = (path, bytes(vm.serial.captured))
        finally:
            vm.stop("benchmark")
            thread.join(RUN_TIMEOUT)
            vm.close()
    return snapshots, errors


def run(runs=DEFAULT_RUNS, warmup=1, engines=ENGINES, progress=None) -> dict:
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    require_guest(PROGRAM)
    folder = tempfile.mkdtemp(prefix="pyvmm-bench-snapshot-")
    try:
        snapshots, errors = take_snapshots(engines, folder)
        context = {"snapshots": snapshots, "snapshot_errors": errors, "spawner": build_spawner(Path(folder))}
        rows = all_rows(engines)
        state = interleave(rows, runs, warmup, context, progress, part="snapshot")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out = {}
    for row in rows:
        entry = state[row.name]
        samples = entry["samples"] if entry["status"] == OK else []
        keys = sorted({key for sample in samples for key, value in sample.items() if value is not None})
        out[row.name] = {"label": row.label, "status": entry["status"], "reason": entry["reason"],
                         **{key: summary([s[key] for s in samples if s.get(key) is not None]) for key in keys}}
    kvm = out.get("restore/kvm/kvm", {}).get("running")
    return {"benchmark": "snapshot", "program": PROGRAM, "runs": runs, "warmup_rounds": warmup,
            "order": "interleaved round-robin", "machine": describe_machine(), "rows": out,
            "goal": {"what": "restore to running in-process on KVM under 5 ms",
                     "median_ms": None if kvm is None else kvm["median"] * 1000,
                     "met": None if kvm is None else kvm["median"] < GOAL_SECONDS}}


def format_report(result: dict) -> str:
    rows, notes = result["rows"], []
    machine = result["machine"]
    lines = [f"{machine['cpu_model']}, {machine['cpus']} CPUs, Linux {machine['kernel']}, KVM: {machine['kvm']}", "",
             f"`{result['program']}` paused at the middle of its output; {result['runs']} runs per row, "
             f"{result['order']}; median (min-max)", ""]

    def mib(summary_):
        return spread(summary_, 1 / (1 << 20), "{:.2f}")
    body = []
    for name, row in rows.items():
        if name.startswith("save/"):
            body.append([row["label"], status_text(row, notes), spread(row.get("seconds"), 1000),
                         mib(row.get("memory_file")), mib(row.get("on_disk")), spread(row.get("manifest"), 1 / 1024)])
    lines.append(table(["snapshot", "status", "save ms", "memory file MiB", "on disk MiB", "manifest KiB"], body,
                       align="<<>>>>"))
    lines.append("")
    body = []
    for name, row in rows.items():
        if name.startswith("restore/") or name.startswith("cold/"):
            resident, after = row.get("resident"), row.get("resident_after")
            body.append([row["label"], status_text(row, notes), spread(row.get("restore"), 1000),
                         spread(row.get("running"), 1000, "{:.2f}"), spread(row.get("exit"), 1000),
                         "" if resident is None else f"{resident['median'] / (1 << 20):.2f} / "
                                                     f"{after['median'] / (1 << 20):.2f} of "
                                                     f"{row['ram']['median'] / (1 << 20):.0f}"])
    lines.append(table(["in this process", "status", "Machine.restore ms", "to running ms", "to exit ms",
                        "RAM resident MiB (restored / at exit)"], body, align="<<>>>>"))
    lines.append("to running: the guest's first serial byte after the snapshot point (cold boot: its first byte).")
    lines.append("")
    body = [[row["label"], status_text(row, notes), spread(row.get("exit"), 1000)]
            for name, row in rows.items() if name.startswith("process/")]
    lines.append(table(["process", "status", "spawn to exit ms"], body, align="<<>"))
    goal = result["goal"]
    lines.append("")
    lines.append("goal: restore to running in-process on KVM under 5 ms: " +
                 ("not measurable (no KVM row)" if goal["met"] is None else
                  f"{goal['median_ms']:.2f} ms, {'met' if goal['met'] else 'NOT met'}"))
    lines.extend(notes)
    return "\n".join(lines)


def main(runs=DEFAULT_RUNS, json_path=None) -> int:
    result = run(runs, progress=progress_printer)
    failed = any(row["status"] == FAILED for row in result["rows"].values())
    return report(result, format_report(result), json_path, failed=failed)
