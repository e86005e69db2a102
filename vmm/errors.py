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


# The table the README documents, in order.
EXIT_STATUSES = [
    (UsageError.exit_status, "bad command-line arguments or option values"),
    (ImageError.exit_status, "malformed kernel, program or firmware image, or one that does not fit in RAM"),
    (InputError.exit_status, "a kernel, program or disk file is missing or unreadable"),
    (AcceleratorUnavailable.exit_status, "the CPU engine is unavailable (/dev/kvm absent or not permitted, KVM too old), "
                                         "or a container cannot be made here (not root, a namespace kind or "
                                         "cgroup controller missing)"),
    (VmmError.exit_status, "internal VMM error (a bug: please report it with --debug output)"),
    (GuestCrashed.exit_status, "the guest crashed: triple fault, emulation failure, entry failure, engine error"),
    (GuestTimeout.exit_status, "the guest did not finish within --timeout"),
    (130, "interrupted by SIGINT (Ctrl-C), or ended with the console escape Ctrl-A x"),
    (129, "the terminal hung up (SIGHUP); the VM was stopped and the terminal restored"),
    (143, "terminated by SIGTERM; the VM or container was stopped and cleaned up first"),
]
