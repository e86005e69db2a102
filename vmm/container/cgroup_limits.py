"""OCI `linux.resources` -> the cgroup files that enforce them, for cgroup v1 and cgroup v2.

files(version, resources) returns [(controller, file name, value)] in the order they must be
written (a v1 memsw limit after the memory limit it must not be below; a cpu period before its
quota). The kernel's interface files (Documentation/admin-guide/cgroup-v1/*.rst, cgroup-v2.rst):

  OCI                      cgroup v1                          cgroup v2
  memory.limit             memory.limit_in_bytes              memory.max
  memory.reservation       memory.soft_limit_in_bytes         memory.low
  memory.swap (mem+swap)   memory.memsw.limit_in_bytes        memory.swap.max = swap - limit
  memory.swappiness        memory.swappiness                  (none: refused)
  memory.disableOOMKiller  memory.oom_control = 1             (none: refused)
  memory.kernelTCP         memory.kmem.tcp.limit_in_bytes     (none: refused)
  cpu.shares               cpu.shares                         cpu.weight (crun's conversion)
  cpu.quota / cpu.period   cpu.cfs_quota_us / cpu.cfs_period_us   cpu.max = "quota period"
  cpu.realtime*            cpu.rt_runtime_us / cpu.rt_period_us   (none: refused)
  cpu.cpus / cpu.mems      cpuset.cpus / cpuset.mems          cpuset.cpus / cpuset.mems
  cpu.idle                 cpu.idle                           cpu.idle
  pids.limit               pids.max                           pids.max
  devices                  devices.deny / devices.allow       (eBPF; see devices_v2_warning)
  unified                  (refused)                          the named files, as given
-1 means unlimited ("max" in v2, -1 in v1). `memory.kernel` is deprecated and ignored by the
kernel since 5.4; it is skipped with a warning. Controllers this runtime does not drive (blkio,
hugetlb, network, rdma, intelRdt) are refused with a clear message when a value is set, as the
spec asks ("MUST generate an error" for a property that cannot be applied).
"""
import math

from ..errors import VmmError

UNSUPPORTED = ("blockIO", "hugepageLimits", "network", "rdma")


class LimitError(VmmError):
    """A resource setting this runtime cannot apply here."""
    exit_status = 78            # EX_CONFIG


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares -> cgroup v2 cpu.weight, as crun converts them."""
    exponent = math.log2(shares)
    return min(10000, max(1, math.ceil(10 ** ((exponent * exponent + 125 * exponent) / 612.0 - 7.0 / 34.0))))


def _v1_limit(value) -> int:
    return -1 if value == -1 else value


def _v2_limit(value):
    return "max" if value == -1 else value


def files(version: int, resources: dict) -> tuple[list, list]:
    """([(controller, file, value)], [warnings]) for `resources`."""
    for name in UNSUPPORTED:
        if resources.get(name):
            raise LimitError(f"linux.resources.{name} is not supported by this runtime")
    out, warnings = [], []
    memory, cpu, pids = resources.get("memory") or {}, resources.get("cpu") or {}, resources.get("pids") or {}
    if memory.get("kernel") is not None:
        warnings.append("linux.resources.memory.kernel is deprecated and ignored (the kernel dropped kmem limits)")
    (_memory_v1 if version == 1 else _memory_v2)(memory, out)
    (_cpu_v1 if version == 1 else _cpu_v2)(cpu, out)
    if pids.get("limit") is not None:
        out.append(("pids", "pids.max", "max" if pids["limit"] < 0 else pids["limit"]))
    if resources.get("unified"):
        if version == 1:
            raise LimitError("linux.resources.unified needs cgroup v2, and this host's containers use cgroup v1")
        for name, value in resources["unified"].items():
            if "/" in name or name.startswith("."):
                raise LimitError(f"linux.resources.unified: {name!r} is not a cgroup file name")
            out.append((name.split(".", 1)[0], name, value))
    return out, warnings


def _memory_v1(memory: dict, out: list) -> None:
    if memory.get("limit") is not None:
        out.append(("memory", "memory.limit_in_bytes", _v1_limit(memory["limit"])))
    if memory.get("swap") is not None:
        out.append(("memory", "memory.memsw.limit_in_bytes", _v1_limit(memory["swap"])))
    if memory.get("reservation") is not None:
        out.append(("memory", "memory.soft_limit_in_bytes", _v1_limit(memory["reservation"])))
    if memory.get("kernelTCP") is not None:
        out.append(("memory", "memory.kmem.tcp.limit_in_bytes", _v1_limit(memory["kernelTCP"])))
    if memory.get("swappiness") is not None:
        if not 0 <= memory["swappiness"] <= 100:
            raise LimitError(f"linux.resources.memory.swappiness must be 0..100, not {memory['swappiness']}")
        out.append(("memory", "memory.swappiness", memory["swappiness"]))
    if memory.get("disableOOMKiller"):
        out.append(("memory", "memory.oom_control", 1))


def _memory_v2(memory: dict, out: list) -> None:
    for name in ("swappiness", "kernelTCP"):
        if memory.get(name) is not None:
            raise LimitError(f"linux.resources.memory.{name} has no cgroup v2 equivalent")
    if memory.get("disableOOMKiller"):
        raise LimitError("linux.resources.memory.disableOOMKiller has no cgroup v2 equivalent")
    limit, swap = memory.get("limit"), memory.get("swap")
    if limit is not None:
        out.append(("memory", "memory.max", _v2_limit(limit)))
    if swap is not None:
        if swap == -1 or limit in (None, -1):
            out.append(("memory", "memory.swap.max", _v2_limit(swap)))
        elif swap < limit:
            raise LimitError(f"linux.resources.memory.swap ({swap}) is below the memory limit ({limit})")
        else:
            out.append(("memory", "memory.swap.max", swap - limit))
    if memory.get("reservation") is not None:
        out.append(("memory", "memory.low", _v2_limit(memory["reservation"])))


def _cpu_v1(cpu: dict, out: list) -> None:
    if cpu.get("shares") is not None:
        out.append(("cpu", "cpu.shares", cpu["shares"]))
    if cpu.get("period") is not None:
        out.append(("cpu", "cpu.cfs_period_us", cpu["period"]))
    if cpu.get("quota") is not None:
        out.append(("cpu", "cpu.cfs_quota_us", cpu["quota"]))
    if cpu.get("realtimePeriod") is not None:
        out.append(("cpu", "cpu.rt_period_us", cpu["realtimePeriod"]))
    if cpu.get("realtimeRuntime") is not None:
        out.append(("cpu", "cpu.rt_runtime_us", cpu["realtimeRuntime"]))
    _cpuset_and_idle(cpu, out)


def _cpu_v2(cpu: dict, out: list) -> None:
    if cpu.get("realtimePeriod") is not None or cpu.get("realtimeRuntime") is not None:
        raise LimitError("linux.resources.cpu.realtime* has no cgroup v2 equivalent")
    if cpu.get("shares"):
        out.append(("cpu", "cpu.weight", shares_to_weight(cpu["shares"])))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota is not None or period is not None:
        quota_text = "max" if quota in (None, -1) or quota <= 0 else str(quota)
        out.append(("cpu", "cpu.max", f"{quota_text} {period or 100000}"))
    _cpuset_and_idle(cpu, out)


def _cpuset_and_idle(cpu: dict, out: list) -> None:
    if cpu.get("cpus"):
        out.append(("cpuset", "cpuset.cpus", cpu["cpus"]))
    if cpu.get("mems"):
        out.append(("cpuset", "cpuset.mems", cpu["mems"]))
    if cpu.get("idle") is not None:
        out.append(("cpu", "cpu.idle", cpu["idle"]))


def device_rules_v1(rules) -> list:
    """[(file, line)] for a v1 devices cgroup: each rule in order, to devices.allow or devices.deny."""
    lines = []
    for rule in rules:
        major = "*" if rule.major is None else rule.major
        minor = "*" if rule.minor is None else rule.minor
        kind = rule.kind or "a"
        entry = "a" if kind == "a" and rule.major is None and rule.minor is None else f"{kind} {major}:{minor}"
        lines.append(("devices.allow" if rule.allow else "devices.deny", f"{entry} {rule.access or 'rwm'}"))
    return lines
