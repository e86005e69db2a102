"""The start-up benchmark: one static program, `hello`, started every way this machine offers.

Rows (each run checks the output `hello from ring 3` and the exit status; a row whose tool is
missing or cannot run here stays in the table with the reason, and a row whose run fails
reports that failure instead of a time):

  vmm-kvm         `vmm run --accel kvm`: the VMM as a command, direct PVH boot
  vmm-firmware    `vmm run --accel kvm --firmware ...`: the same through the reset-vector firmware
  vmm-unicorn     `vmm run --accel unicorn`: the software CPU engine
  api-kvm         Machine(...).run() in this process, KVM: no interpreter start-up, warm imports
  api-unicorn     the same on unicorn
  qemu-kvm        QEMU microvm, KVM, the same kernel and program (isa-debug-exit 1 is success)
  qemu-tcg        QEMU microvm, TCG
  container-cli   `vmm container run ROOTFS -- /bin/hello`: the project's container launcher
  container-api   run_container() in this process (it forks this process)
  crun, runc      `crun run` / `runc run` on an OCI bundle made here around the same ROOTFS
  vmm-oci, podman-*   the project's OCI runtime on that bundle, and `podman run` with runc, with
                  vmm-oci and with vmm-oci's VM mode (startup_oci.py)
  plain           posix_spawn of the program itself: the floor

After the table: where `vmm run` spends its start-up per engine (the modules it imports and
their time, its --stats phases) and the issue's goals, from startup_budget.py.

Timing: wall time from just before the process is spawned to just after it is reaped (wait4),
both taken by the small C spawner (bench/process.py) that starts every process row; for the in-process
rows, from Machine creation to the guest's exit (run() returning; close() is not counted), and
the whole run_container() call. Runs are interleaved round-robin (run 1 of every row, then
run 2 ...), after one warm-up round that is not counted, so drifts in the host's speed hit
every row alike.

Memory: for a process row, the peak RSS of the launched process tree (wait4's ru_maxrss: the
largest single process of the tree, not the sum), taken by the spawner so that this Python
process's own RSS is not counted in (see bench/process.py); for api-*, the growth
of this process's RSS from before Machine creation to guest exit (guest RAM touched plus the
engine's structures); for container-api, none (run_container reaps its child itself).

Ratios: each row's median over the plain process's median, and over the fastest VM row's
median, where VM rows are those that start a VM as a process (vmm-*, qemu-*): the in-process
rows skip the interpreter start-up the others pay, so they are not the yardstick.

crun 1.8.1 fails on a hybrid cgroup host (v1 controllers plus a v2 mount at
/sys/fs/cgroup/unified); there it runs through nsenter in a private mount namespace, made once
by a holder process, in which that v2 mount is unmounted (see notes/peers.md).

    vmm bench startup [--runs N] [--json PATH]
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .. import paths
from ..errors import UsageError
from ..scratch import make_folder
from . import startup_budget, startup_oci
from .harness import (CGROUP_V2_HYBRID, FAILED, OK, UNAVAILABLE, Row, RunFailed, Unavailable, bars, describe_machine,
                      engine_unavailable, interleave, is_hybrid_cgroup_host, progress_printer, ratio, report,
                      require_guest, summary, table)
from .process import (build_spawner, current_rss_kib, run_process, settle_memory, vmm_command, vmm_env,
                      which)

PROGRAM = paths.DEFAULT_PROGRAM                 # "hello"
EXPECTED = b"hello from ring 3\n"
RUN_TIMEOUT = 120.0                             # seconds for one run before it is a failure
UNAVAILABLE_STATUS = 69                         # `vmm`'s status for an unavailable engine
QEMU_SUCCESS = 1                                # isa-debug-exit: (0 << 1) | 1
NO_SPAWNER = ("not measured: no C compiler for the spawner (a child of this Python process would "
              "inherit its RSS in ru_maxrss)")


def check_output(process, expected_status: int, what: str, banner: bool = False) -> None:
    """The run's status and output must be the program's; with `banner`, whole lines (a
    firmware's banner) may come before the program's output."""
    output = bytes(process.output)
    if process.status != expected_status:
        raise RunFailed(f"{what}: exit status {process.status} (expected {expected_status}), "
                        f"output {output[:80]!r}; stderr: {process.stderr_line()}")
    head = output[:-len(EXPECTED)] if output.endswith(EXPECTED) else None
    if head is None or (head and not (banner and head.endswith(b"\n"))):
        raise RunFailed(f"{what}: output {output[:120]!r} is not {EXPECTED!r}"
                        + (" (after a banner)" if banner else ""))


def firmware_image() -> Path:
    return getattr(paths, "DEFAULT_FIRMWARE", paths.REPO_ROOT / "firmware" / "build" / "firmware.bin")


# --- rows -------------------------------------------------------------------------------

class StartRow(Row):
    """One way of starting the program. prepare() raises Unavailable; measure() returns
    (seconds, rss KiB or None) or raises RunFailed/Unavailable."""
    kind = "process"                    # or "in-process"
    vm = False                          # starts a VM
    rss_measure = "peak RSS of the launched process tree (wait4 ru_maxrss: its largest process)"
    command = None                      # argv for a process row, for the JSON

    def measure(self, context):
        process = run_process(self.command, self.env(context), context["spawner"], RUN_TIMEOUT)
        self.check(process)
        return process.seconds, process.maxrss_kib if context["spawner"] else None

    def env(self, context):
        return None

    def check(self, process) -> None:
        check_output(process, 0, self.name)


class VmmRun(StartRow):
    vm = True

    def __init__(self, name, label, accel, firmware=False):
        self.name, self.label, self.accel, self.firmware = name, label, accel, firmware

    def prepare(self, context):
        reason = engine_unavailable(self.accel)
        if reason is not None:
            raise Unavailable(reason)
        extra = []
        if self.firmware:
            help_text = subprocess.run(vmm_command() + ["run", "--help"], capture_output=True,
                                       env=vmm_env(), timeout=60).stdout.decode(errors="replace")
            extra = firmware_arguments(help_text, firmware_image())
        self.command = vmm_command() + ["run", "--accel", self.accel, *extra, "--initrd", PROGRAM]

    def env(self, context):
        return context["vmm_env"]

    def check(self, process):
        if process.status == UNAVAILABLE_STATUS:     # the probe in prepare() found the engine here
            raise RunFailed(f"`vmm run` exited {UNAVAILABLE_STATUS} (engine unavailable) although the probe "
                            f"found {self.accel}: {process.stderr_line()}")
        check_output(process, 0, self.name, banner=self.firmware)   # the firmware prints a banner


def firmware_arguments(help_text: str, image: Path) -> list:
    """The `vmm run` arguments for a firmware boot, read from its --help text: `--firmware IMAGE`
    if the option takes a value, `--firmware` if it is a flag (or the same for --bios)."""
    option = next((line.split() for line in help_text.splitlines()
                   if line.strip().startswith(("--firmware", "--bios"))), None)
    if option is None:
        raise Unavailable("firmware boot not built (`vmm run --help` has no --firmware)")
    name = option[0].split("=")[0].rstrip(",")
    if len(option) > 1 and option[1].lstrip("[").rstrip(",")[:1].isupper():
        if not image.exists():
            raise Unavailable(f"firmware image not built: {image} (`make -C firmware`)")
        return [name, str(image)]
    return [name]


class ApiRun(StartRow):
    kind = "in-process"
    vm = True
    rss_measure = "RSS growth of this process, Machine creation to guest exit"

    def __init__(self, name, label, accel):
        self.name, self.label, self.accel = name, label, accel

    def prepare(self, context):
        reason = engine_unavailable(self.accel)
        if reason is not None:
            raise Unavailable(reason)

    def measure(self, context):
        from ..config import MachineConfig
        from ..machine import Machine
        config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path(PROGRAM)),
                               accel=self.accel, serial="none", timeout=RUN_TIMEOUT)
        settle_memory()
        before = current_rss_kib()
        started = time.monotonic_ns()
        vm = Machine(config)
        try:
            result = vm.run()
            seconds = (time.monotonic_ns() - started) / 1e9
            growth = current_rss_kib() - before
        finally:
            vm.close()
        if result.exit_status != 0:
            raise RunFailed(f"{self.name}: {result.reason} status {result.status} ({result.detail}), "
                            f"output {result.serial[:80]!r}")
        if result.serial != EXPECTED:
            raise RunFailed(f"{self.name}: output {result.serial[:80]!r} is not {EXPECTED!r}")
        return seconds, growth


class Qemu(StartRow):
    vm = True

    def __init__(self, name, label, accel):
        self.name, self.label, self.accel = name, label, accel

    def prepare(self, context):
        qemu = which("qemu-system-x86_64")
        if self.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise Unavailable("/dev/kvm is missing or not permitted")
        self.command = [qemu, "-M", "microvm", "-accel", self.accel, "-nodefaults", "-no-user-config",
                        "-display", "none", "-serial", "stdio",
                        "-device", "isa-debug-exit,iobase=0xf4,iosize=4",
                        "-kernel", str(paths.DEFAULT_KERNEL), "-initrd", str(paths.program_path(PROGRAM))]

    def check(self, process):
        check_output(process, QEMU_SUCCESS, self.name)


def _container_probe():
    from ..container import probe
    reason = probe()
    if reason is not None:
        raise Unavailable(f"containers unavailable: {reason}")


class ContainerCli(StartRow):
    name = "container-cli"
    label = "vmm container run (namespaces + pivot_root)"

    def prepare(self, context):
        _container_probe()
        self.command = vmm_command() + ["container", "run", str(context["rootfs"]), "--", f"/bin/{PROGRAM}"]

    def env(self, context):
        return context["vmm_env"]


class ContainerApi(StartRow):
    name = "container-api"
    label = "run_container() in-process (forks this process)"
    kind = "in-process"
    rss_measure = "none: run_container reaps its child itself"

    def prepare(self, context):
        _container_probe()

    def measure(self, context):
        from ..container import run_container
        read_fd, write_fd = os.pipe()
        with tempfile.TemporaryFile() as stderr, open(os.devnull, "rb") as stdin:
            try:
                started = time.monotonic_ns()
                status = run_container(context["rootfs"], [f"/bin/{PROGRAM}"], stdin=stdin,
                                       stdout=write_fd, stderr=stderr)
                seconds = (time.monotonic_ns() - started) / 1e9
            finally:
                os.close(write_fd)
            with os.fdopen(read_fd, "rb") as reader:
                output = reader.read()
            if status != 0 or output != EXPECTED:
                stderr.seek(0)
                raise RunFailed(f"{self.name}: exit status {status}, output {output[:80]!r}; "
                                f"stderr: {stderr.read()[-200:].decode(errors='replace').strip()}")
        return seconds, None


class Oci(StartRow):
    """crun or runc on a bundle in the benchmark's temporary directory."""

    def __init__(self, runtime):
        self.name = self.runtime = runtime
        self.label = f"{runtime} run (OCI bundle)"
        self.holder = None
        self.prefix = []
        self.serial = 0

    def prepare(self, context):
        self.path = which(self.runtime)
        if os.geteuid() != 0:
            raise Unavailable(f"{self.runtime} needs root here")
        if self.runtime == "crun" and is_hybrid_cgroup_host():
            self._start_holder()
            self.label = "crun run (OCI bundle; via nsenter, v2 cgroup mount hidden)"
        self.bundle = str(context["bundle"])
        self.command = self._argv("ID")

    def _start_holder(self):
        """A process in a private mount namespace without the hybrid v2 mount (see module doc)."""
        from ..host.process import set_parent_death_signal
        unshare, nsenter = which("unshare"), which("nsenter")
        self.holder = subprocess.Popen(     # killed by close(), or by the kernel if we die first
            [unshare, "--mount", "--propagation", "private", "sh", "-c",
             f"umount {CGROUP_V2_HYBRID} && echo ready && exec sleep 1000000"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
            preexec_fn=lambda: set_parent_death_signal(signal.SIGKILL))
        line = self.holder.stdout.readline()
        if line.strip() != b"ready":
            error = self.holder.stderr.read().decode(errors="replace").strip()
            self.close()
            raise Unavailable(f"cannot make the private mount namespace crun needs here: {error}")
        self.prefix = [nsenter, f"--mount=/proc/{self.holder.pid}/ns/mnt"]

    def _argv(self, container_id, action="run"):
        if action == "run":
            return self.prefix + [self.path, "run", "--bundle", self.bundle, container_id]
        return self.prefix + [self.path, "delete", "--force", container_id]

    def measure(self, context):
        self.serial += 1
        container_id = f"pyvmm-bench-{os.getpid()}-{self.serial}"
        try:
            process = run_process(self._argv(container_id), None, context["spawner"], RUN_TIMEOUT)
        finally:
            subprocess.run(self._argv(container_id, "delete"), capture_output=True, timeout=60)
        check_output(process, 0, self.name)
        return process.seconds, process.maxrss_kib if context["spawner"] else None

    def close(self):
        if self.holder is not None:
            self.holder.kill()
            self.holder.wait()
            self.holder.stdout.close()
            self.holder.stderr.close()
            self.holder = None


class Plain(StartRow):
    name = "plain"
    label = "plain process (posix_spawn + wait4)"

    def prepare(self, context):
        self.command = [str(paths.program_path(PROGRAM))]


def all_rows() -> list:
    return [
        VmmRun("vmm-kvm", "vmm run, KVM, PVH boot", "kvm"),
        VmmRun("vmm-firmware", "vmm run, KVM, firmware boot", "kvm", firmware=True),
        VmmRun("vmm-unicorn", "vmm run, unicorn, PVH boot", "unicorn"),
        ApiRun("api-kvm", "Machine API, KVM (in-process, warm imports)", "kvm"),
        ApiRun("api-unicorn", "Machine API, unicorn (in-process, warm imports)", "unicorn"),
        Qemu("qemu-kvm", "QEMU microvm, KVM", "kvm"),
        Qemu("qemu-tcg", "QEMU microvm, TCG", "tcg"),
        ContainerCli(),
        ContainerApi(),
        Oci("crun"),
        Oci("runc"),
        *startup_oci.rows(check_output),
        Plain(),
    ]


# --- the benchmark ---------------------------------------------------------------------------

def run(runs: int = 10, warmup: int = 1, rows=None, progress=None, budget: bool = True) -> dict:
    """Measure every row `runs` times, interleaved, after `warmup` uncounted rounds; returns
    the result (see assemble), with the import budget and the goals unless `budget` is
    False. The bundle, root file system and spawner live in a temporary
    directory, removed at the end."""
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    require_guest(PROGRAM)
    rows = all_rows() if rows is None else rows
    workdir = Path(make_folder("bench-startup"))
    try:
        from ..container import build_rootfs
        context = {"bundle": workdir, "rootfs": build_rootfs(workdir / "rootfs", [PROGRAM]),
                   "vmm_env": vmm_env(), "spawner": build_spawner(workdir)}
        write_oci_config(workdir)
        if context["spawner"] is None:
            for row in rows:
                if row.kind == "process":
                    row.rss_measure = NO_SPAWNER
        state = interleave(rows, runs, warmup, context, progress)
        for entry in state.values():
            samples = entry.pop("samples")
            entry["times"] = [seconds for seconds, _ in samples]
            entry["rss_kib"] = [rss for _, rss in samples]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result = assemble(rows, state, runs, warmup)
    if budget:
        if progress:
            print("  import budget and phases of vmm run ...", file=sys.stderr, flush=True)
        result["budget"] = startup_budget.measure(runs=min(runs, 3))
        result["goals"] = startup_budget.goals(result["rows"])
    result["process_timing"] = ("by the C spawner: posix_spawn to wait4, CLOCK_MONOTONIC" if context["spawner"]
                                else "by this process: posix_spawn to wait4 (no C compiler for the spawner)")
    return result


def write_oci_config(bundle: Path) -> None:
    """The smallest OCI runtime config that runs /bin/PROGRAM in the namespaces run_container uses."""
    config = {
        "ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "args": [f"/bin/{PROGRAM}"],
                    "env": ["PATH=/bin", "HOME=/"], "cwd": "/"},
        "root": {"path": "rootfs", "readonly": False},
        "hostname": "container",
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
        "linux": {"namespaces": [{"type": kind} for kind in ("pid", "mount", "uts", "ipc", "network")]},
    }
    (bundle / "config.json").write_text(json.dumps(config, indent=1))


def assemble(rows, state, runs, warmup) -> dict:
    out = []
    for row in rows:
        entry = state[row.name]
        ok = entry["status"] == OK
        rss = [value for value in entry["rss_kib"] if value is not None]
        out.append({
            "name": row.name, "label": row.label, "kind": row.kind, "vm": row.vm,
            "command": row.command, "status": entry["status"], "reason": entry["reason"],
            "seconds": summary(entry["times"]) if ok else None,
            "times": entry["times"] if ok else [],
            "rss_kib": summary(rss) if ok and rss else None,
            "rss_measure": row.rss_measure,
        })
    by_name = {row["name"]: row for row in out}
    plain = by_name.get("plain")
    plain_median = plain["seconds"]["median"] if plain and plain["seconds"] else None
    vm_rows = [row for row in out if row["vm"] and row["kind"] == "process" and row["seconds"]]
    fastest = min(vm_rows, key=lambda row: row["seconds"]["median"], default=None)
    for row in out:
        median = row["seconds"]["median"] if row["seconds"] else None
        row["ratio_to_plain"] = ratio(median, plain_median)
        row["ratio_to_fastest_vm"] = ratio(median, fastest["seconds"]["median"] if fastest else None)
    return {"benchmark": "startup", "program": PROGRAM, "expected_output": EXPECTED.decode(),
            "runs": runs, "warmup_rounds": warmup, "order": "interleaved round-robin",
            "baseline": "plain", "fastest_vm": fastest["name"] if fastest else None,
            "machine": describe_machine(), "rows": out}


def _ms(seconds) -> str:
    return f"{seconds * 1000:.1f}"


def _times(value) -> str:
    if value is None:
        return ""
    digits = 0 if value >= 100 else 1 if value >= 10 else 2 if value >= 0.1 else 3
    return f"{value:.{digits}f}x"


def format_report(result: dict) -> str:
    """The table (every row, with its status), notes for rows without a time, and the bars."""
    machine = result["machine"]
    lines = [f"start-up of `{result['program']}`, launch to exit: {result['runs']} runs per row, "
             f"{result['order']}, after {result['warmup_rounds']} warm-up round(s)",
             f"{machine['cpu_model']}, {machine['cpus']} CPUs, Linux {machine['kernel']}, KVM: {machine['kvm']}",
             ""]
    headers = ["row", "status", "min ms", "median ms", "max ms", "RSS MiB", "x plain", "x fastest VM"]
    body, notes = [], []
    for row in result["rows"]:
        if row["status"] != OK:
            notes.append(f"[{len(notes) + 1}] {row['label']}: "
                         f"{'not available' if row['status'] == UNAVAILABLE else 'FAILED'}: {row['reason']}")
            status = f"{'not available' if row['status'] == UNAVAILABLE else 'FAILED'} [{len(notes)}]"
            body.append([row["label"], status, "", "", "", "", "", ""])
            continue
        s = row["seconds"]
        if row["rss_kib"] is None:
            rss = "n/a"
        else:
            value = row["rss_kib"]["median"] / 1024
            rss = f"{value:+.1f}" if row["kind"] == "in-process" else f"{value:.1f}"
        body.append([row["label"], "ok", _ms(s["min"]), _ms(s["median"]), _ms(s["max"]), rss,
                     _times(row["ratio_to_plain"]), _times(row["ratio_to_fastest_vm"])])
    lines.append(table(headers, body, align="<<>>>>>>"))
    lines.append("")
    lines.extend(notes)
    lines.append("RSS MiB: median peak RSS of the launched process tree (wait4 ru_maxrss, its largest process); "
                 "+N: growth of the benchmark process's own RSS up to guest exit (in-process rows).")
    lines.append(f"x fastest VM: against {result['fastest_vm']}, the fastest row that starts a VM as a process."
                 if result["fastest_vm"] else "x fastest VM: no row that starts a VM as a process succeeded.")
    if "budget" in result:
        lines.append("")
        lines.append(startup_budget.format_budget(result["budget"], result["goals"]))
    lines.append("")
    lines.append("median launch-to-exit:")
    lines.append(bars([(row["label"], row["seconds"]["median"] * 1000 if row["seconds"] else None,
                              ("not available" if row["status"] == UNAVAILABLE else "FAILED"))
                             for row in result["rows"]], width=40, unit=" ms"))
    return "\n".join(lines)


def main(runs: int = 10, json_path=None) -> int:
    """Print the table and the bars (what `vmm bench startup` runs); write JSON if asked.
    Exit status 0, or 1 if a row failed (rows that are only unavailable do not count)."""
    result = run(runs=runs, progress=progress_printer)
    return report(result, format_report(result), json_path, failed=any(row["status"] == FAILED for row in result["rows"]))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.runs, arguments.json))
