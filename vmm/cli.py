"""The `vmm` command: run a guest, test guest programs, run containers, run benchmarks.

Errors print one line on stderr and exit with the status from errors.py (a traceback only
with --debug). The exit-status table is in the README and in `vmm --help`.
"""
import argparse
import os
import sys

from . import layout, paths, signals, standard_streams
from .config import (ACCELERATORS, DEFAULT_CMDLINE, IDLE_POLICIES, LINUX_CMDLINE, LINUX_MEM_SIZE, MachineConfig,
                     check_timeout, format_size, parse_size)
from .debug.session import DEFAULT_TRACE_LIMIT
from .errors import EXIT_STATUSES, CHECKS_FAILED, UsageError, VmmError
from .outcome import CRASHES, DEBUG_EXIT, HALT, OUTPUT_ERROR, TIMEOUT

ACCEL_ENV = "VMM_ACCEL"             # selects the default engine (the test suite sets it)
# Exits remembered for crash reports by `vmm run` (about 2% of a KVM exit each); the API
# and the benchmarks keep none unless asked.
RECENT_EXITS_IN_REPORTS = 16


def default_accel() -> str:
    return os.environ.get(ACCEL_ENV, "auto")


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits with our usage status (64), in one line."""

    def error(self, message):
        raise UsageError(message)


def exit_status_epilog() -> str:
    rows = "\n".join(f"  {status:>5}  {meaning}" for status, meaning in EXIT_STATUSES)
    return ("exit status: the guest's debug-exit status (0-255), 0 when it halts with interrupts off,\n"
            "or one of these for VMM errors:\n" + rows)


def build_parser() -> Parser:
    parser = Parser(prog="vmm", description="A small VMM on Linux KVM, with a unicorn software engine.",
                    epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for VMM errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = commands.add_parser("run", help="boot a kernel with a guest program",
                              description="Boot KERNEL (default: the tiny kernel built under guest/) with PROGRAM as "
                                          "its module. KERNEL may be a Linux bzImage (with --initrd an initramfs), a "
                                          "PVH ELF, or a Multiboot kernel: the format is read from the file. "
                                          "Arguments after `--` reach the program as argv. "
                                          "The guest's serial port is this terminal, in raw mode: "
                                          "Ctrl-A x ends the VM, Ctrl-A Ctrl-A sends Ctrl-A.",
                              epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("kernel", nargs="?", default=None,
                     help=f"kernel: bzImage, PVH ELF or Multiboot (default: {paths.DEFAULT_KERNEL})")
    run.add_argument("--initrd", metavar="PROGRAM", default=None,
                     help="guest program or initrd: a path, or the name of a built guest program "
                          "(default: hello with the tiny kernel, none with another kernel)")
    run.add_argument("--cmdline", default=None,
                     help=f"kernel command line (default: `{DEFAULT_CMDLINE}`; for a Linux bzImage "
                          f"`{LINUX_CMDLINE}`; --stats prints the one used)")
    run.add_argument("--mem", default=None,
                     help=f"guest RAM size, e.g. 64M or 1G (default: {format_size(layout.DEFAULT_MEM_SIZE)}, "
                          f"{format_size(LINUX_MEM_SIZE)} for a Linux bzImage)")
    run.add_argument("--accel", choices=ACCELERATORS, default=default_accel(),
                     help=f"CPU engine; auto takes KVM if it works, else unicorn (default: %(default)s, env {ACCEL_ENV})")
    run.add_argument("--serial", default="stdio", metavar="stdio|file:PATH|none",
                     help="where guest serial output goes (default: %(default)s); input comes from stdin")
    boot = run.add_mutually_exclusive_group()
    boot.add_argument("--firmware", action="store_true",
                      help="boot like real hardware: from the reset vector through the firmware built under "
                           "firmware/, which fetches the kernel over fw_cfg (default: direct PVH boot)")
    boot.add_argument("--bios", metavar="PATH", help="as --firmware, with another firmware image (QEMU's spelling)")
    run.add_argument("--disk", action="append", default=[], metavar="PATH[,ro]",
                     help="a virtio-blk disk backed by a host file (repeatable: vda, vdb, ...); "
                          "make one with `truncate -s 16M disk.img`")
    run.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                     help="stop the guest after this long (exit status 72); with --gdb it bounds the whole "
                          "debugging session, waiting for gdb included")
    run.add_argument("--idle", choices=IDLE_POLICIES, default="sleep",
                     help="unicorn: when the guest waits for its next timer, sleep until then (default), or skip "
                          "the guest's clock there at once (scripts and tests run faster; the guest's clock runs "
                          "ahead of the host's by the time skipped, at most 30 s)")
    run.add_argument("--stats", action="store_true",
                     help="print exit counts, a histogram of exits by port and address, and timings on stderr")
    run.add_argument("--trace", metavar="FILE", help="write every executed guest instruction (address, bytes, "
                                                     "disassembly) to FILE")
    run.add_argument("--trace-limit", type=int, default=DEFAULT_TRACE_LIMIT, metavar="N",
                     help="stop tracing after N lines, so a long run never fills the disk (default: %(default)s)")
    run.add_argument("--trace-exits", metavar="FILE", help="write every VM exit (reason, port or address, size, "
                                                           "data, time) to FILE")
    run.add_argument("--gdb", metavar="127.0.0.1:PORT", help="serve the GDB remote protocol on this loopback address")
    run.add_argument("--gdb-wait", action="store_true", help="with --gdb: hold the guest until gdb continues it")
    run.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    test = commands.add_parser("test", help="run guest test programs and check their expected output",
                               description="Boot the kernel with each PROGRAM (default: all with a .expect file) "
                                           "and check output and exit status; exits 0 only if all pass.")
    test.add_argument("programs", nargs="*", metavar="PROGRAM")
    test.add_argument("--accel", choices=ACCELERATORS + ("all",), default=default_accel(),
                      help="engine, or `all` to run every available engine and compare them (default: %(default)s)")
    test.add_argument("-j", "--jobs", type=int, default=1, help="programs to run in parallel (default: 1)")
    test.add_argument("--timeout", type=float, default=None, metavar="SECONDS", help="per program")
    test.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    container = commands.add_parser("container", help="run a program in a container (namespaces, pivot_root, cgroups)",
                                    description="The project's container launcher, for the VM-versus-container "
                                                "comparison (needs root).",
                                    epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = container.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser, required=True)
    container_run = actions.add_parser(
        "run", help="run PROGRAM as PID 1 of a new container with ROOTFS as its root",
        usage="vmm container run ROOTFS [--memory SIZE] [--cpu-shares N] [--hostname NAME] -- PROGRAM [ARGS...]",
        description="Run PROGRAM (a path inside ROOTFS, or a name looked up in PATH there: /bin, /usr/bin, ...) "
                    "in new PID, mount, UTS, IPC and network namespaces, with ROOTFS as its root and optional "
                    "cgroup limits. Exits with the program's status (128+N if signal N killed it).",
        epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    container_run.add_argument("rootfs", metavar="ROOTFS", help="the root file system (see `vmm container rootfs`)")
    container_run.add_argument("program", nargs="*", metavar="PROGRAM", help=argparse.SUPPRESS)
    container_run.add_argument("--memory", metavar="SIZE", default=None, help="memory limit, e.g. 64M (cgroup)")
    container_run.add_argument("--cpu-shares", metavar="N", type=int, default=None,
                               help="CPU shares, 2..262144 (cgroup v1 cpu.shares, or the matching v2 cpu.weight)")
    container_run.add_argument("--hostname", metavar="NAME", default="container",
                               help="host name inside the container (default: %(default)s)")
    container_run.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    container_rootfs = actions.add_parser(
        "rootfs", help="make DIR a minimal root file system holding static PROGRAMs in /bin",
        description="Create /bin, /dev, /etc, /proc and /tmp in DIR and copy each PROGRAM to /bin. A PROGRAM is a "
                    "path, the name of a built guest program (hello, ...), or NAME=PATH to install PATH as "
                    "/bin/NAME. Prints DIR's absolute path.")
    container_rootfs.add_argument("directory", metavar="DIR")
    container_rootfs.add_argument("programs", nargs="+", metavar="PROGRAM")
    container_rootfs.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)

    bench = commands.add_parser("bench", help="benchmarks, each against a baseline measured in the same run")
    bench.add_argument("which", choices=("exits", "startup", "density", "interrupts", "engines", "boot", "blk",
                                         "linux"),
                       help="exits: port-I/O exits/s through the VMM vs a bare KVM loop; "
                            "interrupts: host CPU of a sleeping guest and timer interrupts delivered per engine; "
                            "blk: virtio-blk MB/s and IOPS from a guest, per engine, against the host and QEMU; "
                            "startup: `hello` started as a VM (vmm, QEMU), a container (vmm, crun, runc) and a "
                            "plain process; density: N VMs at once as threads and as processes, and N containers; "
                            "engines: the unicorn engine against bare unicorn, QEMU TCG, KVM and the host "
                            "(instructions/s on `compute`, port-I/O round trips/s, whole-VM `hello`); "
                            "boot: firmware vs direct PVH boot per engine, and fw_cfg with and without DMA; "
                            "linux: Debian's kernel to its init script and to power-off, per engine and under "
                            "QEMU microvm TCG")
    bench.add_argument("--runs", type=int, default=None,
                       help="runs (default: exits 5, startup 10, density 3, engines 5, boot 5, linux 3)")
    bench.add_argument("--count", type=int, default=None,
                       help="exits: exits per run (default 20000); density: instances at once (default 4); "
                            "engines: MiB for `compute` (default 4); boot: MiB the padded program grows by (default 4)")
    bench.add_argument("--json", metavar="PATH", default=None,
                       help="startup, density, engines, boot, linux: also write results as JSON")
    bench.add_argument("--nested", action="store_true",
                       help="exits: run it in a nested kvm_amd (QEMU TCG guest; `make nested-image` builds it)")
    bench.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


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
    from .terminal import Terminal
    from .debug.session import DebugOptions
    from .machine import Machine
    if args.kernel == "":
        raise UsageError("KERNEL is empty: give a kernel file, or leave it out for the tiny kernel")
    refuse_empty(initrd=args.initrd, bios=args.bios, serial=args.serial)
    initrd = args.initrd
    if initrd is None and args.kernel is None:
        initrd = paths.DEFAULT_PROGRAM          # the tiny kernel's default program
    config = MachineConfig(
        kernel=args.kernel if args.kernel is not None else str(paths.DEFAULT_KERNEL),
        initrd=str(paths.program_path(initrd)) if initrd is not None else None,
        cmdline=args.cmdline, program_args=program_args,
        mem_size=parse_size(args.mem) if args.mem is not None else None,
        accel=args.accel, serial=args.serial, timeout=args.timeout, idle=args.idle,
        firmware=args.bios if args.bios is not None else (str(paths.DEFAULT_FIRMWARE) if args.firmware else None),
        disks=args.disk)
    debug = DebugOptions(trace=args.trace, trace_limit=args.trace_limit, trace_exits=args.trace_exits,
                         stats=args.stats, recent_exits=RECENT_EXITS_IN_REPORTS, gdb=args.gdb, gdb_wait=args.gdb_wait)
    with Machine(config, debug=debug) as vm, Terminal(sys.stdin.fileno(), vm.send_input, vm.stop):
        address = vm.debug.listening()
        if address:
            print(f"vmm: gdb stub listening on {address}" + (" (waiting for gdb)" if args.gdb_wait else ""),
                  file=sys.stderr)
        result = vm.run()
    if result.reason not in (DEBUG_EXIT, HALT):
        print(f"vmm: {describe(result)}", file=sys.stderr)
        if result.cpu_report:
            print(result.cpu_report, file=sys.stderr)
    if args.stats:
        print_stats(result.stats)
    return result.exit_status


def describe(result) -> str:
    if result.reason in CRASHES:
        return f"guest crashed ({result.reason}): {result.detail}"
    if result.reason == TIMEOUT:
        return f"guest timed out: {result.detail}"
    if result.reason == OUTPUT_ERROR:
        return f"error: {result.detail}"
    return f"{result.reason}: {result.detail}"


def print_stats(stats) -> None:
    out = sys.stderr
    print(f"engine: {stats['engine']} ({stats['engine_choice']})", file=out)
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
    if args.nested and args.which != "exits":
        raise UsageError("--nested is for `bench exits`")
    if args.which == "exits":
        if args.json:
            raise UsageError("--json is for `bench startup`, `density`, `engines` and `boot`")
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
    if args.which == "interrupts":
        if args.json or runs is not None or count is not None:
            raise UsageError("`bench interrupts` takes no --runs, --count or --json")
        from .bench import interrupts
        from .guest_tests import available_engines
        return interrupts.main(engine=available_engines() or ["kvm"])
    if args.which == "startup":
        if count is not None:
            raise UsageError("--count is for `bench exits`, `density`, `engines` and `boot`")
        from .bench import startup
        return startup.main(runs=10 if runs is None else runs, json_path=args.json)
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
    return density.main(count=4 if count is None else count, runs=3 if runs is None else runs, json_path=args.json)


def check_standard_streams(args) -> None:
    """A command whose console or output is a closed descriptor gets a usage error, not a
    traceback or a write into whatever file took the descriptor's number."""
    closed = standard_streams.closed
    needs_input = args.command == "run" or (args.command == "container" and args.action == "run")
    needs_output = not (args.command == "run" and args.serial != "stdio")
    if needs_input and 0 in closed:
        raise UsageError("standard input is closed: give the console an input (</dev/null for none)")
    if needs_output and 1 in closed:
        raise UsageError("standard output is closed: give it a file (>/dev/null to discard it)"
                         + (" or use --serial none" if args.command == "run" else ""))


def dispatch(argv, program_args) -> int:
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return UsageError.exit_status
    check_standard_streams(args)
    if args.command == "run":
        return command_run(args, program_args)
    if args.command == "container":
        return command_container(args, program_args)
    if program_args:
        raise UsageError("`--` arguments are only for `vmm run` and `vmm container run`")
    if args.command == "test":
        return command_test(args)
    return command_bench(args)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
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
