"""The VMM's error classes, each with the process exit status the CLI uses for it.

Statuses follow BSD sysexits.h where one fits; the README's exit-status table is built
from this module (see EXIT_STATUSES).
"""


class VmmError(Exception):
    """Base class: an error the CLI reports as one line, with `exit_status`."""
    exit_status = 70            # EX_SOFTWARE: an internal error


class UsageError(VmmError):
    """Bad command-line arguments or configuration values."""
    exit_status = 64            # EX_USAGE


class ImageError(VmmError):
    """A kernel, program or firmware image that is malformed or does not fit."""
    exit_status = 65            # EX_DATAERR


class InputError(VmmError):
    """A file that is missing or cannot be read (kernel, program, disk)."""
    exit_status = 66            # EX_NOINPUT


class AcceleratorUnavailable(VmmError):
    """The requested CPU engine cannot run here (/dev/kvm absent, not permitted, too old)."""
    exit_status = 69            # EX_UNAVAILABLE


class OutputError(VmmError):
    """Output the user asked for could not be written (a full disk, an I/O error, a closed pipe)."""
    exit_status = 74            # EX_IOERR


class GuestMemoryError(VmmError):
    """An access outside guest RAM (a guest-supplied address that is not RAM)."""
    exit_status = 70


class GuestCrashed(VmmError):
    """Not raised: the status for a guest that crashed (triple fault, emulation failure...)."""
    exit_status = 71


class GuestTimeout(VmmError):
    """Not raised: the status for a guest stopped by --timeout."""
    exit_status = 72


# Statuses of the commands themselves, not errors.
CHECKS_FAILED = 1               # `vmm test`: a program failed its .expect; `vmm bench`: a row failed
SIGNAL_BASE = 128               # 128 + N: ended by signal N (vmm/signals.py), as a shell reports it

# The table the README documents, in order: (status, meaning). `vmm run` adds the guest's own
# debug-exit status (0-255), which can collide with these (README, "Exit status").
EXIT_STATUSES = [
    ("1", "`vmm test`: a guest program failed its expectation; `vmm bench`: a row's run failed"),
    (str(UsageError.exit_status), "bad command-line arguments or option values, or a standard input or output "
                                  "the command needs is closed"),
    (str(ImageError.exit_status), "malformed kernel, program or firmware image, or one that does not fit in RAM; "
                                  "a snapshot that is corrupt, truncated, of a newer format, or whose disks changed"),
    (str(InputError.exit_status), "a file is missing, unreadable or of the wrong kind (a FIFO, a device, a "
                                  "directory), a disk image is in use by another VM, or an output file cannot "
                                  "be created"),
    (str(AcceleratorUnavailable.exit_status), "the CPU engine is unavailable (/dev/kvm absent or not permitted, "
                                              "KVM too old), or a container cannot be made here (not root, a "
                                              "namespace kind or cgroup controller missing)"),
    (str(VmmError.exit_status), "internal VMM error (a bug: please report it with --debug output)"),
    (str(GuestCrashed.exit_status), "the guest crashed: triple fault, emulation failure, entry failure, engine error"),
    (str(GuestTimeout.exit_status), "the guest did not finish within --timeout"),
    (str(OutputError.exit_status), "output could not be written (a full disk, an I/O error, a closed pipe): the "
                                   "guest's serial output, a trace, or the command's standard output"),
    ("128+N", "ended by signal N, after the VM or container was stopped and everything cleaned up: 129 SIGHUP "
              "(or the terminal hung up), 130 SIGINT (Ctrl-C, or the console escape Ctrl-A x), 131 SIGQUIT, "
              "138 SIGUSR1, 140 SIGUSR2, 142 SIGALRM, 143 SIGTERM, and so on for every catchable signal "
              "that would end the process"),
]
