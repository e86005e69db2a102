"""The density benchmark: N instances of `hello` started at once, until the last one finishes.

Modes (each run checks every instance's output and exit status):
  vm-threads      N Machines (KVM) on N threads of this process, through the API
  vm-processes    N `vmm run --accel kvm` processes
  container-threads  N run_container() calls on N threads of this process
  containers      N `vmm container run` processes (the project's container launcher)
  plain           N plain processes of the program: the floor

Time: from starting the first instance to the last one's exit (for threads, the last run()
returning). Memory per instance:
  threads:   (this process's RSS when all N guests have exited, before any Machine is closed,
             minus its RSS before the threads started) / N: guest RAM touched plus the
             VMM's per-VM structures; imports are warm (one VM runs first, not counted);
  processes: the mean of the processes' peak RSS (wait4 ru_maxrss, through the spawner of
             bench/process.py, so this Python process's own RSS is not counted in).
Modes run interleaved for `runs` rounds; the table shows medians (and min/max time).

    vmm bench density [--count N] [--runs R] [--json PATH]
"""
import shutil
import threading
import time
from pathlib import Path

from .. import paths
from ..errors import UsageError
from ..scratch import make_folder
from .harness import (FAILED, OK, UNAVAILABLE, Row, RunFailed, Unavailable, describe_machine, interleave,
                      progress_printer, report, require_guest, summary, table)
from .process import build_spawner, collect, current_rss_kib, settle_memory, spawn, vmm_command, vmm_env
from .startup import EXPECTED, PROGRAM, RUN_TIMEOUT


class Mode(Row):
    """One way of starting `count` instances (context["count"])."""
    memory_measure = ""

    def measure(self, context):
        return self.run_once(context["count"], context)

    def run_once(self, count: int, context):
        """(seconds until all finished, memory per instance in KiB or None)."""
        raise NotImplementedError


class VmThreads(Mode):
    name = "vm-threads"
    label = "VMs as threads of one process (Machine API, KVM)"
    memory_measure = "RSS growth of this process with all N VMs alive / N"

    def prepare(self, context):
        from ..machine import probe
        reason = probe("kvm")
        if reason is not None:
            raise Unavailable(reason)
        from ..kvm import install_kick_handler
        install_kick_handler()          # from the main thread: VMs on other threads need it
        self.run_once(1, context)       # warm imports, not counted

    def run_once(self, count, context):
        from ..config import MachineConfig
        from ..machine import Machine
        config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path(PROGRAM)),
                               accel="kvm", serial="none", timeout=RUN_TIMEOUT)
        all_exited = threading.Barrier(count + 1)
        release = threading.Event()
        results, errors, ends = [None] * count, [None] * count, [0] * count

        def instance(index):
            try:
                with Machine(config) as vm:
                    results[index] = vm.run()
                    ends[index] = time.monotonic_ns()
                    all_exited.wait(RUN_TIMEOUT)
                    release.wait(RUN_TIMEOUT)
            except BaseException as error:      # reported by the main thread
                errors[index] = error
                all_exited.abort()

        settle_memory()
        before = current_rss_kib()
        threads = [threading.Thread(target=instance, args=(i,), name=f"vm-{i}") for i in range(count)]
        started = time.monotonic_ns()
        for thread in threads:
            thread.start()
        try:
            all_exited.wait(RUN_TIMEOUT)
            during = current_rss_kib()
        except threading.BrokenBarrierError:
            during = None
        finally:
            release.set()
            for thread in threads:
                thread.join()
        failed = [(i, e) for i, e in enumerate(errors) if e is not None]
        if failed:
            index, error = failed[0]
            raise RunFailed(f"VM {index}: {type(error).__name__}: {error}")
        for index, result in enumerate(results):
            if result.exit_status != 0 or result.serial != EXPECTED:
                raise RunFailed(f"VM {index}: {result.reason} status {result.status} ({result.detail}), "
                                f"output {result.serial[:80]!r}")
        return (max(ends) - started) / 1e9, (during - before) / count


class Processes(Mode):
    memory_measure = "mean peak RSS of each instance's process tree (wait4 ru_maxrss)"

    def __init__(self, name, label, expected_status=0):
        self.name, self.label, self.expected_status = name, label, expected_status

    def argv(self, context) -> list:
        raise NotImplementedError

    def run_once(self, count, context):
        argv, env, spawner = self.argv(context), context["vmm_env"], context["spawner"]
        launched = []
        try:
            for _ in range(count):
                launched.append(spawn(argv, env, spawner))
        finally:
            collect(launched, RUN_TIMEOUT)
        for index, process in enumerate(launched):
            if process.status == 69 and self.name != "plain":
                raise Unavailable(process.stderr_line().removeprefix("vmm: error: "))
            if process.status != self.expected_status or bytes(process.output) != EXPECTED:
                raise RunFailed(f"instance {index}: exit status {process.status}, output "
                                f"{bytes(process.output)[:80]!r}; stderr: {process.stderr_line()}")
        seconds = (max(p.ended for p in launched) - min(p.started for p in launched)) / 1e9
        memory = sum(p.maxrss_kib for p in launched) / count if spawner else None
        return seconds, memory


class VmProcesses(Processes):
    def __init__(self):
        super().__init__("vm-processes", "VMs as processes (vmm run --accel kvm)")

    def argv(self, context):
        return vmm_command() + ["run", "--accel", "kvm", "--initrd", PROGRAM]


class Containers(Processes):
    def __init__(self):
        super().__init__("containers", "containers (vmm container run)")

    def prepare(self, context):
        from ..container import probe
        reason = probe()
        if reason is not None:
            raise Unavailable(f"containers unavailable: {reason}")

    def argv(self, context):
        return vmm_command() + ["container", "run", str(context["rootfs"]), "--", f"/bin/{PROGRAM}"]


class ContainerThreads(Mode):
    name = "container-threads"
    label = "containers from threads of one process (run_container)"
    memory_measure = "not measured: run_container reaps its children itself"

    def prepare(self, context):
        Containers().prepare(context)

    def run_once(self, count, context):
        import os
        from ..container import run_container
        statuses, errors, outputs, ends = [None] * count, [None] * count, [b""] * count, [0] * count

        def instance(index):
            read_fd, write_fd = os.pipe()
            try:
                try:
                    statuses[index] = run_container(context["rootfs"], [f"/bin/{PROGRAM}"], stdout=write_fd)
                    ends[index] = time.monotonic_ns()
                finally:
                    os.close(write_fd)
                with os.fdopen(read_fd, "rb") as reader:
                    outputs[index] = reader.read()
            except BaseException as error:      # reported by the main thread
                errors[index] = error

        threads = [threading.Thread(target=instance, args=(i,), name=f"container-{i}") for i in range(count)]
        started = time.monotonic_ns()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for index in range(count):
            if errors[index] is not None:
                raise RunFailed(f"container {index}: {type(errors[index]).__name__}: {errors[index]}")
            if statuses[index] != 0 or outputs[index] != EXPECTED:
                raise RunFailed(f"container {index}: exit status {statuses[index]}, output {outputs[index][:80]!r}")
        return (max(ends) - started) / 1e9, None


class Plain(Processes):
    def __init__(self):
        super().__init__("plain", "plain processes")

    def argv(self, context):
        return [str(paths.program_path(PROGRAM))]


def all_modes() -> list:
    return [VmThreads(), VmProcesses(), ContainerThreads(), Containers(), Plain()]


def run(count: int = 4, runs: int = 3, modes=None, progress=None) -> dict:
    if count < 1 or runs < 1:
        raise UsageError("--count and --runs must be at least 1")
    require_guest(PROGRAM)
    modes = all_modes() if modes is None else modes
    workdir = Path(make_folder("bench-density"))
    try:
        from ..container import build_rootfs
        context = {"count": count, "rootfs": build_rootfs(workdir / "rootfs", [PROGRAM]), "vmm_env": vmm_env(),
                   "spawner": build_spawner(workdir)}
        state = interleave(modes, runs, warmup=0, context=context, progress=progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for mode in modes:
        entry = state[mode.name]
        ok = entry["status"] == OK
        times = [seconds for seconds, _ in entry["samples"]]
        memory = [m for _, m in entry["samples"] if m is not None]
        rows.append({"name": mode.name, "label": mode.label, "status": entry["status"], "reason": entry["reason"],
                     "seconds": summary(times) if ok else None, "times": times,
                     "memory_kib_per_instance": summary(memory) if ok and memory else None,
                     "memory_measure": mode.memory_measure if context["spawner"] or not isinstance(mode, Processes)
                     else "not measured: no C compiler for the spawner"})
    return {"benchmark": "density", "program": PROGRAM, "count": count, "runs": runs,
            "machine": describe_machine(), "rows": rows}


def format_report(result: dict) -> str:
    lines = [f"density: {result['count']} instances of `{result['program']}` started at once, "
             f"until all have exited; {result['runs']} interleaved rounds, medians", ""]
    body, notes = [], []
    for row in result["rows"]:
        if row["status"] != OK:
            what = "not available" if row["status"] == UNAVAILABLE else "FAILED"
            notes.append(f"[{len(notes) + 1}] {row['label']}: {what}: {row['reason']}")
            body.append([row["label"], f"{what} [{len(notes)}]", "", "", "", ""])
            continue
        s, memory = row["seconds"], row["memory_kib_per_instance"]
        body.append([row["label"], "ok", f"{s['min'] * 1000:.1f}", f"{s['median'] * 1000:.1f}",
                     f"{s['max'] * 1000:.1f}", "n/a" if memory is None else f"{memory['median'] / 1024:.2f}"])
    lines.append(table(["mode", "status", "min ms", "median ms", "max ms", "MiB per instance"],
                             body, align="<<>>>>"))
    lines.append("")
    lines.extend(notes)
    for row in result["rows"]:
        lines.append(f"{row['label']}: memory is {row['memory_measure']}")
    return "\n".join(lines)


def main(count: int = 4, runs: int = 3, json_path=None) -> int:
    result = run(count=count, runs=runs, progress=progress_printer)
    return report(result, format_report(result), json_path, failed=any(row["status"] == FAILED for row in result["rows"]))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.count, arguments.runs, arguments.json))
