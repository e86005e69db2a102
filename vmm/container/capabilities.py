"""Linux capabilities of a container's process: names, the bounding set, capset(2), ambient.

Numbers are from <linux/capability.h> (Linux 6.x: 0..40). The order of application is runc's
(libcontainer/init_linux.go finalizeNamespace), because each step needs the privilege the
next one drops:
1. drop_bounding(keep): every capability not kept leaves the bounding set (needs CAP_SETPCAP);
2. keep_across_setuid(True), then the caller changes uid/gid (a root process keeps its
   permitted set across setuid only with PR_SET_KEEPCAPS);
3. keep_across_setuid(False), then apply(sets): capset the effective, permitted and
   inheritable sets, and raise each ambient capability.
A capability this kernel does not know is left out with a warning (runtime-spec: "MUST be
logged as a warning"), which the caller prints.
"""
from ..host import container_calls
from ..host import process
from .errors import ContainerUnavailable

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT",
    "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
    "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: number for number, name in enumerate(NAMES)}
SETS = ("bounding", "effective", "permitted", "inheritable", "ambient")


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        with open("/proc/sys/kernel/cap_last_cap") as file:
            return int(file.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def resolve(sets: dict) -> tuple[dict, list]:
    """{set name: [CAP_...]} -> ({set name: set of numbers}, [warnings]); a missing set is empty."""
    highest = last_cap()
    numbers, warnings = {}, []
    for kind in SETS:
        numbers[kind] = set()
        for name in sets.get(kind) or ():
            number = NUMBERS.get(name)
            if number is None or number > highest:
                warnings.append(f"capability {name} is unknown to this kernel; left out of the {kind} set")
                continue
            numbers[kind].add(number)
    return numbers, warnings


def drop_bounding(keep: set) -> None:
    for number in range(last_cap() + 1):
        if number not in keep and process.prctl(process.PR_CAPBSET_READ, number) == 1:
            process.prctl(process.PR_CAPBSET_DROP, number)


def keep_across_setuid(keep: bool) -> None:
    process.prctl(process.PR_SET_KEEPCAPS, 1 if keep else 0)


def _mask(numbers: set) -> int:
    return sum(1 << n for n in numbers)


def apply(numbers: dict) -> list:
    """capset the effective, permitted and inheritable sets; then raise the ambient ones.
    Returns warnings: an ambient capability that is not both permitted and inheritable cannot be
    raised (prctl says EPERM); runc warns and goes on, and so does this."""
    try:
        container_calls.capset(_mask(numbers["effective"]), _mask(numbers["permitted"]),
                               _mask(numbers["inheritable"]))
    except PermissionError:
        _explain_refusal(numbers)
        raise
    process.prctl(process.PR_CAP_AMBIENT, process.PR_CAP_AMBIENT_CLEAR_ALL)
    warnings = []
    for number in sorted(numbers["ambient"]):
        try:
            process.prctl(process.PR_CAP_AMBIENT, process.PR_CAP_AMBIENT_RAISE, number)
        except OSError as error:
            warnings.append(f"cannot raise ambient capability {NAMES[number]}: {error.strerror}")
    return warnings


def _explain_refusal(numbers: dict) -> None:
    """capset said EPERM: name the capabilities asked for that this process does not hold (a host
    whose own bounding set lacks some, as CAP_SYS_RESOURCE on this project's machines)."""
    missing = (numbers["effective"] | numbers["permitted"] | numbers["inheritable"]) - current()["permitted"]
    if missing:
        names = ", ".join(NAMES[n] for n in sorted(missing))
        raise ContainerUnavailable(f"the container asks for {names}, which the runtime does not hold on this host "
                                   f"(not in its bounding set), so it cannot pass them on; leave them out "
                                   f"(podman: --cap-drop {names.split(', ')[0]})") from None


def current(pid: int = 0) -> dict:
    """{effective, permitted, inheritable: set of numbers} of a process (0: this one)."""
    masks = container_calls.capget(pid)
    return {kind: {n for n in range(64) if mask >> n & 1}
            for kind, mask in zip(("effective", "permitted", "inheritable"), masks)}
