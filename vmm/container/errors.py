"""The container launcher's own error classes (the rest come from vmm/errors.py).

- ContainerUnavailable, 69 (EX_UNAVAILABLE, like AcceleratorUnavailable): the isolation the
  container needs is missing here: not root, a namespace kind the kernel lacks or forbids, a
  cgroup controller that is neither mounted (v1) nor enabled (v2).
- ContainerTerminated, 128 + N (like a shell): terminating signal N (SIGTERM, SIGHUP, SIGQUIT...,
  vmm/signals.py) arrived while a container ran; the container was killed and its cgroup
  removed before this was raised. SIGINT raises the usual KeyboardInterrupt (130).
Missing or unreadable ROOTFS or PROGRAM is the project's InputError (66).
"""
from ..errors import VmmError
from ..signals import Terminated, signal_name


class ContainerUnavailable(VmmError):
    """Namespaces or a cgroup controller cannot be used here (not root, not built in, not mounted)."""
    exit_status = 69            # EX_UNAVAILABLE


class ContainerTerminated(Terminated):
    """A terminating signal stopped the launcher; the container was killed and cleaned up."""

    def __init__(self, signum: int):
        super().__init__(signum, f"terminated by {signal_name(signum)}; the container was killed")
