"""The block benchmark: virtio-blk throughput as a guest program sees it, beside the host.

Three measurements, each made by guest/programs/blkbench on /dev/vda (one VM boot per
measurement; the guest times its own system calls with CLOCK_MONOTONIC, so boot is not
counted):
  seq write   `seq_mib` MiB in 1 MiB pwrite64 calls, then fsync (MB/s, 10^6 bytes/s)
  seq read    `seq_mib` MiB in 1 MiB pread64 calls (MB/s)
  rand read   `rand_ops` 4 KiB pread64 calls at random 4 KiB offsets (IOPS)
Sequential runs wrap around the disk image (`disk_mib`, a temporary file, in the host's page
cache after the first pass: this measures the virtualisation path, not the host's disk).

Rows:
  host          this process on the same image file, same sizes and offsets (os.pwrite, os.preadv
                into one buffer, os.pread): the limit
  vmm-<engine>  our VMM, one row per engine asked for (kvm, unicorn)
  qemu-tcg      the same kernel and program under QEMU microvm with its virtio-blk-device
  qemu-kvm      the same with -accel kvm
A row whose tool is missing or cannot run here is reported with the reason. Runs are
interleaved (run 1 of every row and measurement, then run 2 ...), so a drift in the host's
speed hits every row alike; the table gives min / median / max.

    python -m vmm.bench.blk [--engine kvm --engine unicorn] [--runs 5] [--seq-mib 64] [--rand-ops 2000]
"""
import os
import shutil
import subprocess
import time

from .. import paths
from ..config import MachineConfig
from ..errors import CHECKS_FAILED
from ..machine import Machine, probe
from ..scratch import scratch_folder
from .harness import FAILED, OK, Row, RunFailed, Unavailable, interleave, summary, table

MODES = ("seqwrite", "seqread", "randread")
LABELS = {"seqwrite": "seq write MB/s", "seqread": "seq read MB/s", "randread": "rand read 4K IOPS"}
BLOCK = 1 << 20
SMALL = 4096
PROGRAM = "blkbench"
RUN_TIMEOUT = 300.0
DEFAULT_RUNS = 5
DEFAULT_SEQ_MIB = 64
DEFAULT_RAND_OPS = 2000
DEFAULT_DISK_MIB = 64


def _count(mode, seq_mib, rand_ops):
    return rand_ops if mode == "randread" else seq_mib


def parse_result(output: bytes, mode: str):
    """(bytes, ops, seconds) from blkbench's `blkbench MODE bytes=N ops=N ns=N` line."""
    for line in output.decode(errors="replace").splitlines():
        words = line.split()
        if len(words) == 5 and words[0] == PROGRAM and words[1] == mode:
            fields = dict(word.split("=", 1) for word in words[2:])
            return int(fields["bytes"]), int(fields["ops"]), int(fields["ns"]) / 1e9
    raise RuntimeError(f"no result line for {mode} in the output: {output[-300:]!r}")


def rate(mode, moved, ops, seconds):
    """MB/s for the sequential modes, IOPS for random reads."""
    return ops / seconds if mode == "randread" else moved / seconds / 1e6


# --- rows -------------------------------------------------------------------------------------

class BlockRow(Row):
    """measure(): {mode: MB/s or IOPS} for every mode, on context["disk"]."""

    def measure(self, context):
        rates = {}
        for mode in MODES:
            count = _count(mode, context["seq_mib"], context["rand_ops"])
            try:
                moved, ops, seconds = self.measure_mode(context["disk"], mode, count)
            except Exception as error:      # a failed row stays in the table with its reason
                raise RunFailed(f"{type(error).__name__}: {error}") from None
            rates[mode] = rate(mode, moved, ops, seconds)
        return rates


class HostRow(BlockRow):
    name = label = "host"

    def measure_mode(self, disk, mode, count):
        size = os.path.getsize(disk) // BLOCK * BLOCK
        fd = os.open(disk, os.O_RDWR)
        try:
            if mode == "randread":
                return self._random(fd, size, count)
            buf = bytearray(b"\xa5" * BLOCK)
            offset, started = 0, time.perf_counter()
            for _ in range(count):
                if offset + BLOCK > size:
                    offset = 0
                done = os.pwrite(fd, buf, offset) if mode == "seqwrite" else os.preadv(fd, [buf], offset)
                if done != BLOCK:
                    raise RuntimeError(f"short transfer: {done}")
                offset += BLOCK
            if mode == "seqwrite":
                os.fsync(fd)
            return count * BLOCK, count, time.perf_counter() - started
        finally:
            os.close(fd)

    @staticmethod
    def _random(fd, size, count):
        seed, mask = 0x9E3779B97F4A7C15, (1 << 64) - 1      # blkbench's xorshift64
        pages = size // SMALL
        started = time.perf_counter()
        for _ in range(count):
            seed ^= (seed << 13) & mask
            seed ^= seed >> 7
            seed ^= (seed << 17) & mask
            if len(os.pread(fd, SMALL, seed % pages * SMALL)) != SMALL:
                raise RuntimeError("short read")
        return count * SMALL, count, time.perf_counter() - started


class VmmRow(BlockRow):
    def __init__(self, engine):
        self.engine = engine
        self.name = self.label = f"vmm-{engine}"

    def prepare(self, context):
        reason = probe(self.engine)
        if reason is not None:
            raise Unavailable(reason)

    def measure_mode(self, disk, mode, count):
        config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=str(paths.program_path(PROGRAM)),
                               program_args=[mode, str(count)], accel=self.engine, disks=[disk],
                               timeout=RUN_TIMEOUT)
        with Machine(config) as vm:
            result = vm.run()
        if result.exit_status != 0:
            raise RuntimeError(f"exit status {result.exit_status} ({result.detail}): {result.serial[-300:]!r}")
        return parse_result(result.serial, mode)


class QemuRow(BlockRow):
    """QEMU microvm with acpi=off (so it announces its virtio-mmio slots on the kernel
    command line) and version-2 transports (its default is legacy, which the kernel refuses)."""

    def __init__(self, accel):
        self.accel = accel
        self.name = self.label = f"qemu-{accel}"
        self.qemu = shutil.which("qemu-system-x86_64")

    def prepare(self, context):
        if self.qemu is None:
            raise Unavailable("qemu-system-x86_64 not installed")
        if self.accel == "kvm" and not os.access("/dev/kvm", os.R_OK | os.W_OK):
            raise Unavailable("/dev/kvm not usable")

    def measure_mode(self, disk, mode, count):
        cmd = [self.qemu, "-M", "microvm,acpi=off", "-global", "virtio-mmio.force-legacy=false",
               "-accel", self.accel, "-nodefaults", "-no-user-config", "-display", "none",
               "-serial", "stdio", "-device", "isa-debug-exit,iobase=0xf4,iosize=4", "-m", "64M",
               "-kernel", str(paths.DEFAULT_KERNEL), "-initrd", str(paths.program_path(PROGRAM)),
               "-append", f"console=ttyS0 -- {mode} {count}",
               "-drive", f"file={disk},format=raw,if=none,id=d0", "-device", "virtio-blk-device,drive=d0"]
        proc = subprocess.run(cmd, capture_output=True, timeout=RUN_TIMEOUT)
        if proc.returncode != 1:                    # isa-debug-exit: (0 << 1) | 1
            raise RuntimeError(f"QEMU exit status {proc.returncode}: {proc.stdout[-300:]!r} "
                               f"{proc.stderr[-300:]!r}")
        return parse_result(proc.stdout, mode)


# --- running ----------------------------------------------------------------------------------

def run(engines=("kvm", "unicorn"), runs=DEFAULT_RUNS, seq_mib=DEFAULT_SEQ_MIB, rand_ops=DEFAULT_RAND_OPS,
        disk_mib=DEFAULT_DISK_MIB, qemu=True, progress=None) -> dict:
    """{"rows": [{"name", "status", "reason", mode: [rate, ...]}], "settings": {...}}"""
    rows = [HostRow(), *(VmmRow(engine) for engine in engines)]
    if qemu:
        rows += [QemuRow("tcg"), QemuRow("kvm")]
    with scratch_folder("bench-blk") as folder:
        disk = os.path.join(folder, "disk.img")
        with open(disk, "wb") as f:                 # real blocks, not a sparse file
            chunk = b"\x5a" * BLOCK
            for _ in range(disk_mib):
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())                    # no dirty pages left for the first row's fsync
        context = {"disk": disk, "seq_mib": seq_mib, "rand_ops": rand_ops}
        state = interleave(rows, runs, warmup=0, context=context, progress=progress)
    results = []
    for row in rows:
        entry = state[row.name]
        results.append({"name": row.name, "status": entry["status"], "reason": entry["reason"],
                        **{mode: [sample[mode] for sample in entry["samples"]] for mode in MODES}})
    return {"rows": results, "settings": {"runs": runs, "seq_mib": seq_mib, "rand_ops": rand_ops,
                                          "disk_mib": disk_mib, "engines": list(engines)}}


def _cell(values, fmt):
    if not values:
        return ""
    s = summary(values)
    return f"{fmt.format(s['min'])} / {fmt.format(s['median'])} / {fmt.format(s['max'])}"


def format_report(result: dict) -> str:
    settings = result["settings"]
    headers = ["row"] + [f"{LABELS[mode]} (min / median / max)" for mode in MODES]
    body, notes = [], []
    host = next((r for r in result["rows"] if r["name"] == "host" and r["status"] == OK), None)
    for row in result["rows"]:
        if row["status"] != OK:
            body.append([row["name"], f"({row['status']})", "", ""])
            notes.append(f"{row['name']}: {row['reason']}")
            continue
        body.append([row["name"]] + [_cell(row[mode], "{:.0f}") for mode in MODES])
    lines = [f"block I/O, {settings['runs']} runs each, interleaved; sequential {settings['seq_mib']} MiB "
             f"in 1 MiB calls, random {settings['rand_ops']} x 4 KiB; a {settings['disk_mib']} MiB image "
             "in the host's page cache", table(headers, body)]
    if host:
        ratios = []
        for row in result["rows"]:
            if row["status"] == OK and row["name"] != "host":
                parts = [f"{LABELS[mode].split(' MB/s')[0].split(' 4K')[0]} "
                         f"{summary(row[mode])['median'] / summary(host[mode])['median']:.1%}"
                         for mode in MODES]
                ratios.append(f"  {row['name']}: " + ", ".join(parts))
        lines += ["median against the host:", *ratios]
    lines += notes
    return "\n".join(lines)


def main(engines=("kvm", "unicorn"), runs=DEFAULT_RUNS, seq_mib=DEFAULT_SEQ_MIB, rand_ops=DEFAULT_RAND_OPS,
         disk_mib=DEFAULT_DISK_MIB, qemu=True) -> int:
    """Print the table. Exit status 0, or 1 if a row failed (unavailable rows do not count)."""
    def progress(_part, round_number, _warmup, runs_):
        print(f"run {round_number + 1}/{runs_} done", flush=True)
    result = run(engines, runs, seq_mib, rand_ops, disk_mib, qemu, progress=progress)
    print(format_report(result))
    return CHECKS_FAILED if any(row["status"] == FAILED for row in result["rows"]) else 0


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", action="append", choices=("kvm", "unicorn"),
                        help="VMM engine rows (repeatable; default: kvm and unicorn)")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--seq-mib", type=int, default=DEFAULT_SEQ_MIB)
    parser.add_argument("--rand-ops", type=int, default=DEFAULT_RAND_OPS)
    parser.add_argument("--disk-mib", type=int, default=DEFAULT_DISK_MIB)
    parser.add_argument("--no-qemu", action="store_true", help="leave out the QEMU rows")
    arguments = parser.parse_args()
    raise SystemExit(main(tuple(arguments.engine or ("kvm", "unicorn")), arguments.runs, arguments.seq_mib,
                          arguments.rand_ops, arguments.disk_mib, not arguments.no_qemu))
