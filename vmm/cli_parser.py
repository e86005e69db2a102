"""The whole `vmm` command line in argparse: --help for every command, every usage error, and
the commands other than a plain `vmm run` (which cli_options.parse_run reads without argparse,
to save its start-up; `vmm run`'s options are described once, in cli_options.RUN_OPTIONS).
"""
import argparse

from .cli_options import (ACCEL_ENV, CONTROL_OPTIONS, FLAG, HIDDEN, RUN_DESCRIPTION, RUN_OPTIONS, RUN_POSITIONAL,
                          default_accel)
from .config import ACCELERATORS, IDLE_POLICIES
from .errors import EXIT_STATUSES, UsageError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error exits with our usage status (64), in one line."""

    def error(self, message):
        raise UsageError(message)


class VersionAction(argparse.Action):
    """--version: computed only when asked (it probes the engines and hashes the artefacts)."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from .about import version_text
        print(version_text(default_accel()))
        parser.exit(0)


def exit_status_epilog() -> str:
    rows = "\n".join(f"  {status:>5}  {meaning}" for status, meaning in EXIT_STATUSES)
    return ("exit status: the guest's debug-exit status (0-255), 0 when it halts with interrupts off,\n"
            "or one of these for VMM errors:\n" + rows)


def build_parser() -> Parser:
    parser = Parser(prog="vmm", description="A small VMM on Linux KVM, with a unicorn software engine.",
                    epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks for VMM errors")
    parser.add_argument("--version", action=VersionAction,
                        help="print the version, the engine `vmm run` would take, and the guest artefacts' "
                             "location and build ids")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    run = commands.add_parser("run", help="boot a kernel with a guest program or a root file system",
                              description=RUN_DESCRIPTION,
                              epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(run, RUN_OPTIONS, RUN_POSITIONAL)

    restore = commands.add_parser(
        "restore", help="resume a VM saved in a snapshot, on either engine",
        description="Resume the VM saved in directory SNAPSHOT (by --snapshot-file and Ctrl-A s, the control "
                    "socket's `snapshot`, or Machine.snapshot) where it was saved, on KVM or unicorn, whichever "
                    "saved it. Its RAM is mapped from the snapshot's memory file and read as the guest touches it; "
                    "the file is never written, so a snapshot can be restored any number of times. The exit "
                    "status and the rest of the serial output are those of the run it was saved from. A snapshot "
                    "that is corrupt, truncated or of a newer format is refused (status 65), as is one whose disks "
                    "changed since (unless --force); a missing one exits with 66.",
        epilog=exit_status_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    restore.add_argument("snapshot", metavar="SNAPSHOT", help="a snapshot directory")
    restore.add_argument("--accel", choices=ACCELERATORS, default=default_accel(),
                         help=f"CPU engine to resume on (default: %(default)s, env {ACCEL_ENV})")
    restore.add_argument("--serial", default="stdio", metavar="stdio|file:PATH|none",
                         help="where guest serial output goes (default: %(default)s)")
    restore.add_argument("--disk", action="append", default=None, metavar="PATH",
                         help="the saved disks' new paths, in order (default: where they were)")
    restore.add_argument("--force", action="store_true",
                         help="use disks whose size or modification time changed since the snapshot")
    restore.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                         help="stop the guest after this long")
    restore.add_argument("--idle", choices=IDLE_POLICIES, default=None,
                         help="unicorn's idle policy (default: the snapshot's)")
    restore.add_argument("--stats", action="store_true", help="print exit counts and timings on stderr")
    add_option_list(restore, CONTROL_OPTIONS)

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

    commands.add_parser("oci", help="the OCI runtime (as `vmm-oci`): runc's command line, e.g. `vmm oci state ID`",
                        add_help=False)
    bench = commands.add_parser("bench", help="benchmarks, each against a baseline measured in the same run")
    bench.add_argument("which", choices=("exits", "startup", "density", "interrupts", "engines", "boot", "blk",
                                         "syscalls", "linux", "snapshot"),
                       help="exits: port-I/O exits/s through the VMM vs a bare KVM loop; "
                            "interrupts: host CPU of a sleeping guest and timer interrupts delivered per engine; "
                            "blk: virtio-blk MB/s and IOPS from a guest, per engine, against the host and QEMU; "
                            "startup: `hello` started as a VM (vmm, QEMU), a container (vmm, crun, runc) and a "
                            "plain process; density: N VMs at once as threads of one process (KVM, unicorn), N/5 as "
                            "processes and N/5 containers; "
                            "engines: the unicorn engine against bare unicorn, QEMU TCG, KVM and the host "
                            "(instructions/s on `compute`, port-I/O round trips/s, whole-VM `hello`); "
                            "boot: firmware vs direct PVH boot per engine, and fw_cfg with and without DMA; "
                            "syscalls: getppid, a 4 KiB read of a rootfs file, futex and pipe round trips, thread "
                            "create+join, fork+exit+wait and fork+exec+wait per engine against the same binary as a "
                            "host process and in the container launcher, with the kernel's ring-0 instructions per call; "
                            "linux: Debian's kernel to its init script and to power-off, per engine and under "
                            "QEMU microvm TCG; snapshot: time to save, and to restore to running and to exit per "
                            "engine pair, against a cold boot in-process and a cold `vmm run`")
    bench.add_argument("--runs", type=int, default=None,
                       help="runs (default: exits 5, startup 10, density 3, engines 5, boot 5, syscalls 5, linux 3, "
                            "snapshot 10)")
    bench.add_argument("--count", type=int, default=None,
                       help="exits: exits per run (default 20000); density: VMs in one process (default 100; processes "
                            "and containers: a fifth); "
                            "syscalls: calls per run (default: 200000 on the host and in the container, 2000 on KVM, 20000 on "
                            "unicorn; the slower operations divide it, fork and exec by 400); "
                            "engines: MiB for `compute` (default 4); boot: MiB the padded program grows by (default 4)")
    bench.add_argument("--json", metavar="PATH", default=None,
                       help="startup, density, engines, boot, syscalls, linux, snapshot: also write results as JSON")
    bench.add_argument("--nested", action="store_true",
                       help="exits: run it in a nested kvm_amd (QEMU TCG guest; `make nested-image` builds it)")
    bench.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    return parser


def add_options(parser, options, positional) -> None:
    """Add a table of cli_options.Option (and the positional) to an argparse parser."""
    parser.add_argument(positional.dest, nargs="?", default=positional.default, help=positional.help)
    add_option_list(parser, options)


def add_option_list(parser, options) -> None:
    """Add a table of cli_options.Option to an argparse parser."""
    groups = {}
    for option in options:
        target = parser
        if option.group is not None:
            target = groups.get(option.group) or groups.setdefault(option.group,
                                                                    parser.add_mutually_exclusive_group())
        help_text = argparse.SUPPRESS if option.help is HIDDEN else option.help
        if option.kind is FLAG:
            target.add_argument(*option.flags, action="store_true", help=help_text)
            continue
        extra = {"metavar": option.metavar} if option.metavar else {}
        if option.const is not None:            # the value is optional: --strace or --strace FILE
            extra.update(nargs="?", const=option.const)
        if option.choices is not None:
            extra["choices"] = option.choices
        target.add_argument(*option.flags, type=option.kind, default=option.default_value(),
                            action="append" if option.append else "store", help=help_text, **extra)
