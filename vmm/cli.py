"""The `vmm` command: run a guest, restore a snapshot, test guest programs, run containers,
run benchmarks.

Errors print one line on stderr and exit with the status from errors.py (a traceback only
with --debug). The exit-status table is in the README and in `vmm --help`.

Start-up is part of what `vmm run` is measured on (`vmm bench startup`), so this module
imports only what a plain run uses: a plain `vmm run` command line is read by
cli_options.parse_run; argparse (cli_parser.py) is loaded for --help, errors and the other
commands; each command imports its own modules. tests/test_import_budget.py holds the list.
"""
import os
import sys
import time

from . import paths, signals, standard_streams
from .config import MachineConfig, check_timeout, parse_size
from .errors import CHECKS_FAILED, UsageError, VmmError
from .outcome import CRASHES, DEBUG_EXIT, HALT, OUTPUT_ERROR, TIMEOUT

# Exits remembered for crash reports by `vmm run` (about 2% of a KVM exit each); the API
# and the benchmarks keep none unless asked.
RECENT_EXITS_IN_REPORTS = 16


class Arguments:
    """Parsed arguments as attributes (what argparse's Namespace gives), from parse_run's dict."""

    def __init__(self, values: dict):
        self.__dict__.update(values)


def parse_arguments(argv):
    """The parsed command line: a plain `vmm run ...` without argparse when it can be read
    that way (cli_options.py), else argparse's answer (help, errors, other commands); None
    (after printing the help) when no command is given."""
    if argv[:1] == ["run"]:
        from .cli_options import parse_run
        values = parse_run(argv[1:])
        if values is not None:
            return Arguments(dict(values, command="run"))
    from .cli_parser import build_parser
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return None
    return args


def split_program_args(argv):
    """Everything after the first `--` goes to the guest program, untouched by argparse."""
    if "--" in argv:
        cut = argv.index("--")
        return argv[:cut], argv[cut + 1:]
    return argv, []


def refuse_empty(**options) -> None:
    """An option given as '' names nothing: a usage error, never silently the default."""
    for name, value in options.items():
        if value is not None and not value:
            raise UsageError(f"--{name.replace('_', '-')} is empty")


def command_run(args, program_args) -> int:
    if args.kernel == "":
        raise UsageError("KERNEL is empty: give a kernel file, or leave it out for the tiny kernel")
    refuse_empty(initrd=args.initrd, bios=args.bios, serial=args.serial)
    if args.accel == "unicorn":
        from .engines.unicorn_library import preload
        preload()
    from .debug.session import DebugOptions
    from .machine import Machine
    initrd = args.initrd
    if initrd is None and args.kernel is None and args.rootfs is None:
        initrd = paths.DEFAULT_PROGRAM          # the tiny kernel's default program
    config = MachineConfig(
        kernel=args.kernel if args.kernel is not None else paths.location("DEFAULT_KERNEL"),
        initrd=paths.program_file(initrd) if initrd is not None else None, rootfs=args.rootfs,
        strace=args.strace,
        cmdline=args.cmdline, program_args=program_args,
        mem_size=parse_size(args.mem) if args.mem is not None else None,
        accel=args.accel, serial=args.serial, timeout=args.timeout, idle=args.idle,
        firmware=args.bios if args.bios is not None else (paths.location("DEFAULT_FIRMWARE") if args.firmware else None),
        disks=args.disk)
    debug = DebugOptions(trace=args.trace, trace_limit=args.trace_limit, trace_exits=args.trace_exits,
                         stats=args.stats, recent_exits=RECENT_EXITS_IN_REPORTS, gdb=args.gdb, gdb_wait=args.gdb_wait)
    if args.gdb and (args.control or args.snapshot_file or args.snapshot_dirty):
        raise UsageError("--gdb cannot be combined with --control or the snapshot options")
    imported = time.monotonic()
    with Machine(config, debug=debug) as vm:
        result = run_with_console(vm, args)
        ran = time.monotonic()
    closed = time.monotonic()
    return report(result, args, config, imported, ran, closed)


def command_restore(args) -> int:
    if args.accel == "unicorn":
        from .engines.unicorn_library import preload
        preload()
    from .debug.session import DebugOptions
    from .machine import Machine
    debug = DebugOptions(stats=args.stats, recent_exits=RECENT_EXITS_IN_REPORTS)
    imported = time.monotonic()
    with Machine.restore(args.snapshot, accel=args.accel, serial=args.serial, disks=args.disk, timeout=args.timeout,
                         force=args.force, idle=args.idle, debug=debug) as vm:
        config = vm.config
        result = run_with_console(vm, args)
        ran = time.monotonic()
    closed = time.monotonic()
    return report(result, args, config, imported, ran, closed)


def run_with_console(vm, args):
    """vm.run() with the terminal as its console, and the control socket and Ctrl-A s if asked."""
    from .terminal import Terminal
    snapshot_file = check_snapshot_template(args.snapshot_file)
    if args.snapshot_dirty:
        vm.track_dirty_pages()
    on_snapshot = ConsoleSnapshots(vm, snapshot_file)
    control = None
    if args.control:
        from .control.server import ControlServer
        control = ControlServer(args.control, vm, on_snapshot.next_path)
    try:
        with Terminal(sys.stdin.fileno(), vm.send_input, vm.stop, on_snapshot=on_snapshot):
            address = vm.debug.listening()
            if address:
                print(f"vmm: gdb stub listening on {address}"
                      + (" (waiting for gdb)" if getattr(args, "gdb_wait", False) else ""), file=sys.stderr)
            return vm.run()
    finally:
        if control is not None:
            control.close()


def check_snapshot_template(path):
    """--snapshot-file PATH, where {n} (the only field) numbers the snapshots."""
    if path is None:
        return None
    try:
        path.format(n=0)
    except (KeyError, IndexError, ValueError):
        raise UsageError(f"--snapshot-file {path!r}: the only field it may hold is {{n}}") from None
    return path


class ConsoleSnapshots:
    """Ctrl-A s: save the VM to --snapshot-file and go on (the terminal's input thread calls it)."""

    def __init__(self, vm, template):
        self._vm = vm
        self._template = template
        self._count = 0

    def next_path(self):
        """Where the next snapshot goes: --snapshot-file, its {n} the number of snapshots so far."""
        if self._template is None:
            return None
        path = self._template.format(n=self._count)
        self._count += 1
        return path

    def __call__(self) -> None:
        path = self.next_path()
        if path is None:
            print("vmm: Ctrl-A s saves a snapshot only with --snapshot-file PATH", file=sys.stderr)
            return
        try:
            saved = self._vm.snapshot(path)
        except VmmError as error:
            print(f"vmm: snapshot not saved: {error}", file=sys.stderr)
            return
        kind = f"diff on {saved.base}, " if saved.diff else ""
        print(f"vmm: snapshot saved to {saved.path} ({kind}{saved.memory_bytes / (1 << 20):.1f} MiB of RAM written, "
              f"paused {saved.seconds * 1000:.0f} ms)", file=sys.stderr)


def report(result, args, config, imported: float, ran: float, closed: float) -> int:
    """The run's end on stderr (unless the guest exited or halted), --stats, and the exit status."""
    if result.reason not in (DEBUG_EXIT, HALT):
        print(f"vmm: {describe(result)}", file=sys.stderr)
        if result.cpu_report:
            print(result.cpu_report, file=sys.stderr)
    if args.stats:
        print_stats(result.stats, config, phases(result.stats, imported, ran, closed))
    return result.exit_status


def phases(stats, imported: float, ran: float, closed: float) -> list:
    """Where a `vmm run` spent its time, in order: (phase, seconds, note). The interpreter's
    start-up is the CPU time it used before the package began to load (its wall time cannot
    be seen from inside); the rest is wall time."""
    from . import IMPORT_STARTED, INTERPRETER_CPU_SECONDS
    return [("interpreter", INTERPRETER_CPU_SECONDS, "CPU time before the vmm package began to load"),
            ("imports", imported - IMPORT_STARTED, f"the package, up to building the VM ({len(sys.modules)} "
                                                   "modules loaded by the end)"),
            ("engine", stats["engine_seconds"], f"{stats['engine']}: its modules, library and probe"),
            ("VM set-up", stats["setup_seconds"] - stats["engine_seconds"],
             "memory, devices, boot layout, vCPU and its state"),
            ("guest", stats["run_seconds"], "to the guest's exit"),
            ("teardown", closed - ran, "closing the engine, devices and memory")]


def describe(result) -> str:
    if result.reason in CRASHES:
        return f"guest crashed ({result.reason}): {result.detail}"
    if result.reason == TIMEOUT:
        return f"guest timed out: {result.detail}"
    if result.reason == OUTPUT_ERROR:
        return f"error: {result.detail}"
    return f"{result.reason}: {result.detail}"


def print_stats(stats, config, times=()) -> None:
    from .about import run_ids
    out = sys.stderr
    print(f"vmm (pyvmm) {paths.package_version()}; artefacts from the {paths.SOURCE}", file=out)
    print(f"engine: {stats['engine']} ({stats['engine_choice']})", file=out)
    print(f"build ids: {run_ids(config)}", file=out)
    print(f"kernel: {stats['kernel_format']}; command line: {stats['cmdline']}", file=out)
    exits = stats["exits"]
    print(f"exits: {sum(exits.values())} total", file=out)
    for reason, count in sorted(exits.items(), key=lambda kv: -kv[1]):
        print(f"  {reason:<20} {count}", file=out)
    unclaimed = stats["unclaimed"]
    print("unclaimed accesses: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in unclaimed.items()), file=out)
    first = stats["first_serial_byte_seconds"]
    if stats.get("exit_histogram_text"):
        print(stats["exit_histogram_text"], file=out)
    print(f"VM setup: {stats['setup_seconds'] * 1000:.1f} ms; first serial byte: "
          + (f"{first * 1000:.1f} ms" if first is not None else "none")
          + f"; end: {stats['total_seconds'] * 1000:.1f} ms after VM creation", file=out)
    if times:
        print("time: " + " + ".join(f"{name} {seconds * 1000:.1f}" for name, seconds, _ in times)
              + f" = {sum(seconds for _, seconds, _ in times) * 1000:.1f} ms", file=out)
        for name, seconds, note in times:
            print(f"  {name:<12} {seconds * 1000:7.1f} ms  {note}", file=out)


def command_test(args) -> int:
    from .guest_tests import DEFAULT_TIMEOUT, all_programs, available_engines, run_suite
    names = args.programs or all_programs()
    if not names:
        raise UsageError(f"no guest programs found under {paths.PROGRAMS_SOURCE}")
    if args.accel == "all":
        accels = available_engines()
        if not accels:
            raise UsageError("no engine is available")
    else:
        accels = [args.accel]
    if args.jobs < 1:
        raise UsageError("-j must be at least 1")
    if args.timeout is not None:
        check_timeout(args.timeout)
    from .scratch import sweep
    sweep()                                     # scratch disks an earlier, killed run left
    _, failed, _ = run_suite(names, accels, jobs=args.jobs, timeout=args.timeout or DEFAULT_TIMEOUT)
    return CHECKS_FAILED if failed else 0


def command_container(args, program_args) -> int:
    if args.action == "rootfs":
        if program_args:
            raise UsageError("`--` arguments are only for `vmm container run`")
        from .container import build_rootfs
        sys.stdout.buffer.write(os.fsencode(build_rootfs(args.directory, args.programs)) + b"\n")
        return 0
    argv = list(args.program) + list(program_args)
    if not argv:
        raise UsageError("no program given: vmm container run ROOTFS [options] -- PROGRAM [ARGS...]")
    from .container import run_container
    from .container.cgroups import sweep_leftovers
    sweep_leftovers()                           # cgroups an earlier, killed run left
    return run_container(args.rootfs, argv, memory=args.memory, cpu_shares=args.cpu_shares, hostname=args.hostname)


def command_bench(args) -> int:
    from .scratch import sweep
    sweep()                                     # work folders an earlier, killed run left
    def at_least_one(name, value):
        if value is not None and value < 1:
            raise UsageError(f"--{name} must be at least 1")
        return value
    runs, count = at_least_one("runs", args.runs), at_least_one("count", args.count)
    if args.json and args.which in ("startup", "density", "engines", "boot", "linux"):
        from .bench.harness import check_json_path
        check_json_path(args.json)
    if args.nested and args.which != "exits":
        raise UsageError("--nested is for `bench exits`")
    if args.which == "exits":
        if args.json:
            raise UsageError("--json is for `bench startup`, `density`, `engines`, `boot`, `syscalls`, `linux` and `snapshot`")
        runs, count = 5 if runs is None else runs, 20000 if count is None else count
        if args.nested:
            from .bench import nested
            return nested.main(["bench", "exits", "--runs", str(runs), "--count", str(count)])
        from .bench import exits
        return exits.main(runs=runs, count=count)
    if args.which == "blk":
        if args.json or count is not None:
            raise UsageError("`bench blk` takes only --runs")
        from .bench import blk
        from .guest_tests import available_engines
        return blk.main(engines=tuple(available_engines()), runs=runs or blk.DEFAULT_RUNS)
    if args.which == "syscalls":
        from .bench import syscalls
        from .guest_tests import available_engines
        return syscalls.main(engines=tuple(available_engines()), runs=runs or syscalls.DEFAULT_RUNS, count=count,
                             json_path=args.json)
    if args.which == "interrupts":
        if args.json or runs is not None or count is not None:
            raise UsageError("`bench interrupts` takes no --runs, --count or --json")
        from .bench import interrupts
        from .guest_tests import available_engines
        return interrupts.main(engine=available_engines() or ["kvm"])
    if args.which == "startup":
        if count is not None:
            raise UsageError("--count is for `bench exits`, `density`, `engines`, `boot` and `syscalls`")
        from .bench import startup
        return startup.main(runs=10 if runs is None else runs, json_path=args.json)
    if args.which == "snapshot":
        if count is not None or args.nested:
            raise UsageError("`bench snapshot` takes --runs and --json")
        from .bench import snapshot
        return snapshot.main(runs=snapshot.DEFAULT_RUNS if runs is None else runs, json_path=args.json)
    if args.which == "linux":
        if count is not None:
            raise UsageError("`bench linux` takes --runs and --json")
        from .bench import linux
        return linux.main(runs=linux.DEFAULT_RUNS if runs is None else runs, json_path=args.json)
    if args.which == "engines":
        from .bench import engines
        return engines.main(runs=engines.DEFAULT_RUNS if runs is None else runs,
                            mib=engines.DEFAULT_MIB if count is None else count, json_path=args.json)
    if args.which == "boot":
        from .bench import boot
        return boot.main(runs=boot.DEFAULT_RUNS if runs is None else runs,
                         pad_mib=boot.DEFAULT_PAD_MIB if count is None else count, json_path=args.json)
    from .bench import density
    return density.main(count=density.DEFAULT_COUNT if count is None else count, runs=3 if runs is None else runs,
                        json_path=args.json)


def check_standard_streams(args) -> None:
    """A command whose console or output is a closed descriptor gets a usage error, not a
    traceback or a write into whatever file took the descriptor's number."""
    closed = standard_streams.closed
    needs_input = args.command in ("run", "restore") or (args.command == "container" and args.action == "run")
    needs_output = not (args.command in ("run", "restore") and args.serial != "stdio")
    if needs_input and 0 in closed:
        raise UsageError("standard input is closed: give the console an input (</dev/null for none)")
    if needs_output and 1 in closed:
        raise UsageError("standard output is closed: give it a file (>/dev/null to discard it)"
                         + (" or use --serial none" if args.command in ("run", "restore") else ""))


def dispatch(argv, program_args) -> int:
    args = parse_arguments(argv)
    if args is None:                            # `vmm` alone: the help, as a usage error
        return UsageError.exit_status
    check_standard_streams(args)
    if args.command == "run":
        return command_run(args, program_args)
    if args.command == "restore" and not program_args:
        return command_restore(args)
    if args.command == "container":
        return command_container(args, program_args)
    if program_args:
        raise UsageError("`--` arguments are only for `vmm run` and `vmm container run`")
    if args.command == "test":
        return command_test(args)
    return command_bench(args)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["oci"]:             # its own command line (runc's), `--` and all
        from .oci.cli import main as oci_main
        return oci_main(argv[1:], prog="vmm oci")
    argv, program_args = split_program_args(argv)
    debug = "--debug" in argv
    standard_streams.plug()
    try:
        with signals.handled(), standard_streams.checked_stdout():
            status = dispatch(argv, program_args)
            standard_streams.flush()
            return status
    except VmmError as error:
        if debug:
            raise
        print(f"vmm: error: {error}", file=sys.stderr)
        return error.exit_status
    except KeyboardInterrupt:
        print("vmm: interrupted", file=sys.stderr)
        return 130
    except Exception as error:                  # a bug: still one line unless --debug
        if debug:
            raise
        print(f"vmm: internal error: {type(error).__name__}: {error} (run with --debug for details)", file=sys.stderr)
        return VmmError.exit_status


def launch() -> None:
    """The `vmm` command (the launcher and `python -m vmm` call this): main(), then exit. After
    a `vmm run` or `vmm restore` everything is already closed (VM, files, terminal mode), so the process ends
    at once with os._exit instead of tearing down its ~120 modules, which takes about a tenth
    of the run's instructions; other commands exit normally (their atexit handlers may matter)."""
    argv = sys.argv[1:]
    status = main(argv)
    if argv[:1] in (["run"], ["restore"]):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)
    sys.exit(status)

