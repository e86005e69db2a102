"""The options of `vmm run`, written once, and a small parser for the common case.

RUN_OPTIONS is the one description of `vmm run`'s options: cli_parser.py builds the argparse
parser from it (for --help and for every error message), and parse_run() reads a plain
command line with it directly. argparse and what it imports (re, gettext, locale) cost a
`vmm run` about 10 ms of start-up, a fifth of the whole run, so it is loaded only when it
has something to say: parse_run() returns None for anything that is not plainly right
(-h, an unknown or abbreviated option, a missing value, a value starting with "-", a
conversion or choice error, two options of one exclusive group, a second positional) and
the caller hands the same arguments to argparse, which then answers exactly as it would
have. tests/test_cli_options.py checks that both give the same result.
"""
import os

from . import layout, paths
from .config import ACCELERATORS, DEFAULT_CMDLINE, IDLE_POLICIES, LINUX_CMDLINE, LINUX_MEM_SIZE, format_size
from .debug.session import DEFAULT_TRACE_LIMIT

ACCEL_ENV = "VMM_ACCEL"             # selects the default engine (the test suite sets it)
FLAG = "flag"                       # an option without a value (store_true)
HIDDEN = None                       # help=HIDDEN: not listed by --help (argparse.SUPPRESS)


def default_accel() -> str:
    return os.environ.get(ACCEL_ENV, "auto")


class Option:
    """One option: `kind` is FLAG or a converter (str, int, float); `append` collects
    repeats in a list; `group` names a mutually exclusive group; a callable `default` is
    called when a parser is made (the environment may change it)."""
    __slots__ = ("flags", "dest", "kind", "default", "choices", "metavar", "help", "append", "group", "const")

    def __init__(self, *flags, kind=str, default=None, choices=None, metavar=None, help="", append=False,
                 group=None, const=None):
        self.flags = flags
        self.dest = flags[-1].lstrip("-").replace("-", "_")
        self.kind, self.default, self.choices, self.metavar = kind, default, choices, metavar
        self.help, self.append, self.group = help, append, group
        self.const = const              # not None: the value may be left out (argparse's nargs="?")

    def default_value(self):
        if self.append:
            return []
        if self.kind is FLAG:
            return False
        return self.default() if callable(self.default) else self.default


class Positional:
    __slots__ = ("dest", "default", "help")

    def __init__(self, dest, default=None, help=""):
        self.dest, self.default, self.help = dest, default, help


RUN_DESCRIPTION = ("Boot KERNEL (default: the tiny kernel built under guest/) with PROGRAM as its module. KERNEL may "
                   "be a Linux bzImage (with --initrd an initramfs), a PVH ELF, or a Multiboot kernel: the format is "
                   "read from the file. The tiny kernel also boots a root file system (--rootfs DIR, --initrd "
                   "FILE.cpio[.gz]) whose program is the first word after `--` (default /init, then /bin/sh). "
                   "Arguments after `--` reach the program as argv. The guest's serial port is "
                   "this terminal, in raw mode: Ctrl-A x ends the VM, Ctrl-A s saves a snapshot (with "
                   "--snapshot-file), Ctrl-A Ctrl-A sends Ctrl-A.")

# `vmm run [KERNEL]`: at most one positional, optional.
RUN_POSITIONAL = Positional("kernel", help="kernel: bzImage, PVH ELF or Multiboot "
                                           f"(default: {paths.location('DEFAULT_KERNEL')})")

RUN_OPTIONS = (
    Option("--initrd", metavar="PROGRAM",
           help="guest program or initrd: a path, or the name of a built guest program; for the tiny kernel a "
                "static ELF or a root file system as a newc cpio archive, optionally gzip-compressed "
                "(default: hello with the tiny kernel, none with another kernel)"),
    Option("--rootfs", metavar="DIR",
           help="tiny kernel: boot with DIR as the root file system (packed as an initramfs; writes stay in guest "
                "memory); the program is `-- PROGRAM ARGS`, looked up in /bin:/usr/bin:/sbin:/usr/sbin"),
    Option("--strace", metavar="FILE", const="-",
           help="tiny kernel: print every system call of the guest program, with its arguments and result, as "
                "strace does, on stderr or into FILE"),
    Option("--cmdline", help=f"kernel command line (default: `{DEFAULT_CMDLINE}`; for a Linux bzImage "
                             f"`{LINUX_CMDLINE}`; --stats prints the one used)"),
    Option("--mem", help=f"guest RAM size, e.g. 64M or 1G (default: {format_size(layout.DEFAULT_MEM_SIZE)}, "
                         f"{format_size(LINUX_MEM_SIZE)} for a Linux bzImage)"),
    Option("--accel", choices=ACCELERATORS, default=default_accel,
           help=f"CPU engine; auto takes KVM if it works, else unicorn (default: %(default)s, env {ACCEL_ENV})"),
    Option("--serial", default="stdio", metavar="stdio|file:PATH|none",
           help="where guest serial output goes (default: %(default)s); input comes from stdin"),
    Option("--firmware", kind=FLAG, group="boot",
           help="boot like real hardware: from the reset vector through the firmware built under firmware/, "
                "which fetches the kernel over fw_cfg (default: direct PVH boot)"),
    Option("--bios", metavar="PATH", group="boot",
           help="as --firmware, with another firmware image (QEMU's spelling)"),
    Option("--disk", append=True, metavar="PATH[,ro]",
           help="a virtio-blk disk backed by a host file (repeatable: vda, vdb, ...); "
                "make one with `truncate -s 16M disk.img`"),
    Option("--timeout", kind=float, metavar="SECONDS",
           help="stop the guest after this long (exit status 72); with --gdb it bounds the whole debugging "
                "session, waiting for gdb included"),
    Option("--idle", choices=IDLE_POLICIES, default="sleep",
           help="unicorn: when the guest waits for its next timer, sleep until then (default), or skip the "
                "guest's clock there at once (scripts and tests run faster; the guest's clock runs ahead of the "
                "host's by the time skipped, at most 30 s)"),
    Option("--stats", kind=FLAG,
           help="print where the time went (interpreter, imports, engine, VM set-up, guest, teardown), exit counts, "
                "a histogram of exits by port and address, and timings on stderr"),
    Option("--trace", metavar="FILE",
           help="write every executed guest instruction (address, bytes, disassembly) to FILE"),
    Option("--trace-limit", kind=int, default=DEFAULT_TRACE_LIMIT, metavar="N",
           help="stop tracing after N lines, so a long run never fills the disk (default: %(default)s)"),
    Option("--trace-exits", metavar="FILE",
           help="write every VM exit (reason, port or address, size, data, time) to FILE"),
    Option("--gdb", metavar="127.0.0.1:PORT", help="serve the GDB remote protocol on this loopback address"),
    Option("--gdb-wait", kind=FLAG, help="with --gdb: hold the guest until gdb continues it"),
)

# Controlling a running VM and saving it (vmm run and vmm restore); vmm/control, vmm/snapshot.
CONTROL_OPTIONS = (
    Option("--control", metavar="PATH",
           help="serve a control socket at PATH (mode 0600): line-delimited JSON requests pause, resume, "
                "snapshot (with a path), stats and quit"),
    Option("--snapshot-file", metavar="PATH",
           help="where Ctrl-A s (and a control `snapshot` without a path) saves the VM, which then goes on; "
                "a {n} in PATH numbers the snapshots, else each replaces the last"),
    Option("--snapshot-dirty", kind=FLAG,
           help="KVM: keep a dirty-page log, so that each snapshot after the first writes only the pages changed "
                "since the one before (which must stay where it is)"),
    Option("--debug", kind=FLAG, help=HIDDEN),
)
RUN_OPTIONS += CONTROL_OPTIONS


def parse_run(argv, options=RUN_OPTIONS, positional=RUN_POSITIONAL):
    """The values of a `vmm run` command line (the words after `run`, before `--`) as a dict
    of dest -> value, as argparse would give them; or None when argparse must decide."""
    by_flag = {flag: option for option in options for flag in option.flags}
    values = {option.dest: option.default_value() for option in options}
    values[positional.dest] = positional.default
    seen_groups = set()
    positionals = 0
    index = 0
    while index < len(argv):
        word = argv[index]
        index += 1
        if not word.startswith("-") or word == "-":
            positionals += 1
            if positionals > 1:
                return None
            values[positional.dest] = word
            continue
        flag, has_value, value = word.partition("=")
        option = by_flag.get(flag)
        if option is None:
            return None
        if option.group is not None:
            if option.group in seen_groups:
                return None             # argparse's "not allowed with" error (or a repeat it allows)
            seen_groups.add(option.group)
        if option.kind is FLAG:
            if has_value:
                return None
            values[option.dest] = True
            continue
        if not has_value and option.const is not None:
            if index == len(argv) or (argv[index].startswith("-") and argv[index] != "-"):
                value = option.const    # the value left out (argparse takes a next word that is no option)
            else:
                value = argv[index]
                index += 1
        elif not has_value:
            if index == len(argv) or argv[index].startswith("-"):
                return None             # argparse's "expected one argument" (or a negative number)
            value = argv[index]
            index += 1
        try:
            value = option.kind(value)
        except ValueError:
            return None
        if option.choices is not None and value not in option.choices:
            return None
        if option.append:
            values[option.dest].append(value)
        else:
            values[option.dest] = value
    return values
