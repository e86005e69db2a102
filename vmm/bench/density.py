"""The density benchmark: many instances of `hello` started at once, until the last one finishes.

Modes (each run checks every instance's output and exit status):
  vm-threads-kvm      N Machines (KVM) on N threads of this process, through the API
  vm-threads-unicorn  N Machines (unicorn) on N threads of this process
  bare-unicorn        N bare unicorn engines in this process: unicorn's own cost per engine
  vm-processes        P `vmm run --accel kvm` processes
  container-threads   P run_container() calls on P threads of this process
  containers          P `vmm container run` processes (the project's container launcher)
  plain               P plain processes of the program: the floor
N is --count (default 100), P a fifth of it (default 20).

Time: from starting the first instance to the last one's exit (for threads, the last run()
returning). Memory per instance:
  threads:   (this process's RSS when all N guests have exited, before any Machine is closed,
             minus its RSS before the threads started) / N: guest RAM touched plus the
             VMM's per-VM structures; imports are warm (one VM runs first, not counted). The
             guest RAM each VM holds is counted with mincore(2), and the rest is the VM's cost
             beyond it (goal: at most 1 MiB);
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

DEFAULT_COUNT = 100             # VMs in one process
PROCESS_SHARE = 5               # processes and containers: a fifth as many
GOAL_BEYOND_GUEST_KIB = 1024    # an in-process VM's cost beyond the guest RAM it touches


class Mode(Row):
    """One way of starting many instances: context["count"] in-process, else context["process_count"]."""
    memory_measure = ""
    count_key = "process_count"

    def measure(self, context):
        return self.run_once(context[self.count_key], context)

    def run_once(self, count: int, context):
        """(seconds until all finished, memory per instance in KiB or None, guest RAM per
        instance in KiB or None)."""
        raise NotImplementedError


class VmThreads(Mode):
    memory_measure = "RSS growth of this process with all N VMs alive / N (guest RAM: mincore)"
    count_key = "count"

    def __init__(self, accel: str):
        self.accel = accel
        self.name = f"vm-threads-{accel}"
        self.label = f"VMs as threads of one process (Machine API, {'KVM' if accel == 'kvm' else accel})"

    def prepare(self, context):
        from ..machine import probe
        reason = probe(self.accel)
        if reason is not None:
            raise Unavailable(reason)
        if self.accel == "kvm":
            from ..kvm import install_kick_handler
            install_kick_handler()      # from the main thread: VMs on other threads need it
        self.run_once(1, context)       # warm imports, not counted

    def run_once(self, count, context):
        from ..config import MachineConfig
        from ..machine import Machine
        config = MachineConfig(kernel=paths.location("DEFAULT_KERNEL"), initrd=paths.program_file(PROGRAM),
                               accel=self.accel, serial="none", timeout=RUN_TIMEOUT)
        all_exited = threading.Barrier(count + 1)
        release = threading.Event()
        results, errors, ends, guest = [None] * count, [None] * count, [0] * count, [0] * count

        def instance(index):
            try:
                with Machine(config) as vm:
                    results[index] = vm.run()
                    ends[index] = time.monotonic_ns()
                    guest[index] = vm.memory.resident_bytes()
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
            raise RunFailed(f"VM {index} of {count}: {type(error).__name__}: {error}")
        for index, result in enumerate(results):
            if result.exit_status != 0 or result.serial != EXPECTED:
                raise RunFailed(f"VM {index}: {result.reason} status {result.status} ({result.detail}), "
                                f"output {result.serial[:80]!r}")
        return (max(ends) - started) / 1e9, (during - before) / count, sum(guest) / count / 1024


class BareUnicorn(Mode):
    """The floor of an in-process unicorn VM: N bare engines, each with 64 MiB of guest RAM
    mapped (as the engine maps it) and one short block run, no VMM around them."""
    name = "bare-unicorn"
    label = "bare unicorn engines in one process (Uc + 64 MiB mapped, one block run)"
    memory_measure = "RSS growth of this process with all N engines alive / N (guest RAM: mincore)"
    count_key = "count"
    CODE = b"\x48\xff\xc0" * 16 + b"\xf4"         # inc rax (x16); hlt

    def prepare(self, context):
        from ..machine import probe
        reason = probe("unicorn")
        if reason is not None:
            raise Unavailable(reason)

    def run_once(self, count, context):
        from .. import layout
        from ..engines import unicorn_lib as lib
        from ..memory import GuestMemory
        engines = []
        settle_memory()
        before = current_rss_kib()
        started = time.monotonic_ns()
        try:
            for _ in range(count):
                memory = GuestMemory(layout.DEFAULT_MEM_SIZE)
                uc = lib.Uc(lib.UC_ARCH_X86, lib.UC_MODE_64)
                engines.append((uc, memory))
                uc.ctl_set_cpu_model(lib.UC_CPU_X86_HASWELL)
                uc.mem_map_ptr(0, memory.size, lib.UC_PROT_ALL, memory.host_address)
                memory.write(layout.PAGE_SIZE, self.CODE)
                uc.emu_start(layout.PAGE_SIZE, 0)
                if uc.reg_read(lib.UC_X86_REG_RAX) != 16:
                    raise RunFailed("a bare unicorn engine did not run its block")
            ended = time.monotonic_ns()
            during = current_rss_kib()
            guest = sum(memory.resident_bytes() for _, memory in engines) / count / 1024
        finally:
            for uc, memory in engines:
                uc.close()
                memory.close()
        return (ended - started) / 1e9, (during - before) / count, guest


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
        return seconds, memory, None


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
        return (max(ends) - started) / 1e9, None, None


class Plain(Processes):
    def __init__(self):
        super().__init__("plain", "plain processes")

    def argv(self, context):
        return [str(paths.program_path(PROGRAM))]


def all_modes() -> list:
    return [VmThreads("kvm"), VmThreads("unicorn"), BareUnicorn(), VmProcesses(), ContainerThreads(), Containers(),
            Plain()]


def run(count: int = DEFAULT_COUNT, runs: int = 3, modes=None, progress=None) -> dict:
    if count < 1 or runs < 1:
        raise UsageError("--count and --runs must be at least 1")
    require_guest(PROGRAM)
    modes = all_modes() if modes is None else modes
    process_count = max(1, count // PROCESS_SHARE)
    workdir = Path(make_folder("bench-density"))
    try:
        from ..container import build_rootfs
        context = {"count": count, "process_count": process_count, "vmm_env": vmm_env(),
                   "rootfs": build_rootfs(workdir / "rootfs", [PROGRAM]), "spawner": build_spawner(workdir)}
        state = interleave(modes, runs, warmup=0, context=context, progress=progress)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rows = []
    for mode in modes:
        entry = state[mode.name]
        ok = entry["status"] == OK
        times = [seconds for seconds, _, _ in entry["samples"]]
        memory = [m for _, m, _ in entry["samples"] if m is not None]
        guest = [g for _, _, g in entry["samples"] if g is not None]
        beyond = [m - g for _, m, g in entry["samples"] if m is not None and g is not None]
        rows.append({"name": mode.name, "label": mode.label, "status": entry["status"], "reason": entry["reason"],
                     "instances": context[mode.count_key],
                     "seconds": summary(times) if ok else None, "times": times,
                     "memory_kib_per_instance": summary(memory) if ok and memory else None,
                     "guest_ram_kib_per_instance": summary(guest) if ok and guest else None,
                     "beyond_guest_ram_kib": summary(beyond) if ok and beyond else None,
                     "memory_measure": mode.memory_measure if context["spawner"] or not isinstance(mode, Processes)
                     else "not measured: no C compiler for the spawner"})
    goals = [{"what": f"{row['label']}: memory beyond the guest RAM it touches <= 1 MiB",
              "kib": row["beyond_guest_ram_kib"]["median"] if row["beyond_guest_ram_kib"] else None,
              "met": None if not row["beyond_guest_ram_kib"]
              else row["beyond_guest_ram_kib"]["median"] <= GOAL_BEYOND_GUEST_KIB}
             for row in rows if row["name"].startswith("vm-threads")]
    return {"benchmark": "density", "program": PROGRAM, "count": count, "process_count": process_count,
            "runs": runs, "machine": describe_machine(), "rows": rows, "goals": goals}


def format_report(result: dict) -> str:
    lines = [f"density: instances of `{result['program']}` started at once ({result['count']} in one process, "
             f"{result['process_count']} as processes), until all have exited, each checked; "
             f"{result['runs']} interleaved rounds, medians", ""]
    body, notes = [], []
    for row in result["rows"]:
        if row["status"] != OK:
            what = "not available" if row["status"] == UNAVAILABLE else "FAILED"
            notes.append(f"[{len(notes) + 1}] {row['label']}: {what}: {row['reason']}")
            body.append([row["label"], str(row["instances"]), f"{what} [{len(notes)}]", "", "", "", "", "", ""])
            continue
        s, memory = row["seconds"], row["memory_kib_per_instance"]
        guest, beyond = row["guest_ram_kib_per_instance"], row["beyond_guest_ram_kib"]
        mib = (lambda value: "n/a" if value is None else f"{value['median'] / 1024:.2f}")
        body.append([row["label"], str(row["instances"]), "ok", f"{s['min'] * 1000:.1f}", f"{s['median'] * 1000:.1f}",
                     f"{s['max'] * 1000:.1f}", mib(memory), "" if guest is None else mib(guest),
                     "" if beyond is None else mib(beyond)])
    lines.append(table(["mode", "instances", "status", "min ms", "median ms", "max ms", "MiB each",
                        "guest RAM", "beyond it"], body, align="<><>>>>>>"))
    lines.append("")
    lines.extend(notes)
    for row in result["rows"]:
        lines.append(f"{row['label']}: memory is {row['memory_measure']}")
    for goal in result["goals"]:
        lines.append(f"goal: {goal['what']}: " + ("not measured" if goal["kib"] is None else
                                                  f"{goal['kib'] / 1024:.2f} MiB, {'met' if goal['met'] else 'NOT met'}"))
    return "\n".join(lines)


def main(count: int = DEFAULT_COUNT, runs: int = 3, json_path=None) -> int:
    result = run(count=count, runs=runs, progress=progress_printer)
    return report(result, format_report(result), json_path, failed=any(row["status"] == FAILED for row in result["rows"]))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.count, arguments.runs, arguments.json))
