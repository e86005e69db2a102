"""The container launcher's own error classes (the rest come from vmm/errors.py).

- ContainerUnavailable, 69 (EX_UNAVAILABLE, like AcceleratorUnavailable): the isolation the
  container needs is missing here: not root, a namespace kind the kernel lacks or forbids, a
  cgroup controller that is neither mounted (v1) nor enabled (v2).
- ContainerTerminated, 143 (128 + SIGTERM, like a shell): SIGTERM arrived while a container ran;
  the container was killed and its cgroup removed before this was raised. SIGINT raises the
  usual KeyboardInterrupt, which the CLI maps to 130.
Missing or unreadable ROOTFS or PROGRAM is the project's InputError (66).
"""
from ..errors import VmmError


class ContainerUnavailable(VmmError):
    """Namespaces or a cgroup controller cannot be used here (not root, not built in, not mounted)."""
    exit_status = 69            # EX_UNAVAILABLE


class ContainerTerminated(VmmError):
    """SIGTERM stopped the launcher; the container was killed and cleaned up."""
    exit_status = 143           # 128 + SIGTERM
