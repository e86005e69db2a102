"""The OCI runtime's error classes and its exit-status table (README "vmm-oci exit statuses").

runc exits 1 for every error; conmon and podman only look at "not zero" and at the message, so
each kind of failure here gets its own status (BSD sysexits.h where one fits), one line on
stderr, and the same line in the --log file in the format asked:

  64  bad command line                      (UsageError)
  66  bundle, config.json or a file it names is missing or unreadable   (InputError)
  67  no container with that ID              (NoSuchContainer)
  69  cannot be done on this host: not root, a namespace kind, a cgroup controller, libseccomp,
      or an rlimit above this host's ceiling (ContainerUnavailable)
  70  internal error (a bug)                 (VmmError)
  71  the container's set-up failed: a mount, a device, a hook, the program not found
      (SetupFailed)
  73  a container with that ID exists already (ContainerExists)
  75  the container is not in a state that allows the operation (WrongState)
  78  config.json is malformed, or asks for something this runtime does not support (ConfigError)
  129, 130, 143  SIGHUP, SIGINT or SIGTERM ended the command; what it had half made (state,
      cgroup, the container's process) was undone first   (Terminated, KeyboardInterrupt);
      128+N for every other terminating signal N (SIGQUIT, SIGUSR1, SIGALRM...), the same way
`exec` without --detach and `run` without --detach exit with the process's own status (128+N
for signal N), as runc does.
"""
from ..container.errors import ContainerUnavailable
from ..errors import InputError, UsageError, VmmError
from ..signals import TERMINATING as ALL_TERMINATING, signal_name

__all__ = ["ConfigError", "ContainerExists", "NoSuchContainer", "SetupFailed", "Terminated", "WrongState",
           "ContainerUnavailable", "InputError", "UsageError", "VmmError", "EXIT_STATUSES"]


class NoSuchContainer(VmmError):
    exit_status = 67            # EX_NOUSER: the addressee is unknown


class SetupFailed(VmmError):
    exit_status = 71            # EX_OSERR


class ContainerExists(VmmError):
    exit_status = 73            # EX_CANTCREAT


class WrongState(VmmError):
    exit_status = 75            # EX_TEMPFAIL: may work later (after start, after the process exits)


class ConfigError(VmmError):
    exit_status = 78            # EX_CONFIG


# Every catchable signal whose default action ends the process (vmm/signals.py: SIGTERM, SIGHUP,
# SIGQUIT, SIGUSR1, SIGALRM, the real-time ones...): a command dying of one would leave its
# half-made container behind. (SIGINT: KeyboardInterrupt, the same way.)
TERMINATING = ALL_TERMINATING


class Terminated(VmmError):
    """A terminating signal arrived (raised from the handler, so that cleanup code runs)."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal_name(signum)}; what was half-made was undone")
        self.exit_status = 128 + signum


EXIT_STATUSES = [
    (UsageError.exit_status, "bad command-line arguments"),
    (InputError.exit_status, "the bundle, its config.json or a file it names is missing or unreadable"),
    (NoSuchContainer.exit_status, "no container with that ID"),
    (ContainerUnavailable.exit_status, "not possible on this host (not root, a namespace kind, a cgroup controller, "
                                       "libseccomp, an rlimit above this host's ceiling)"),
    (VmmError.exit_status, "internal error (a bug: please report it with --debug output)"),
    (SetupFailed.exit_status, "the container's set-up failed (a mount, a device, a hook, the program not found)"),
    (ContainerExists.exit_status, "a container with that ID exists already"),
    (WrongState.exit_status, "the container's state does not allow the operation"),
    (ConfigError.exit_status, "config.json is malformed or asks for something this runtime does not support"),
    (129, "ended by SIGHUP; what the command had half made was undone first"),
    (130, "ended by SIGINT; what the command had half made was undone first"),
    (143, "ended by SIGTERM; what the command had half made was undone first"),
    ("128+N", "ended by another terminating signal N (131 SIGQUIT, 138 SIGUSR1, 142 SIGALRM...); what the "
              "command had half made was undone first"),
]
