"""The boot benchmark: start-up through the firmware against the direct PVH boot, per engine.

Every run is a Machine in this process (no interpreter start-up), timed from the start of
Machine creation, with three marks: the first serial byte (for a firmware boot, its banner),
the program's first byte (the first byte of the program's own output, after the banner: the
firmware has handed over and the kernel has booted and started the program), and the end
(run() returning). The tiny kernel prints nothing of its own, so the program's first byte is
also the first sign of the kernel.

1. firmware cost, `hello`, on each engine: direct PVH boot (the VMM loads the kernel and the
   program) against the reset-vector firmware, which reads them through fw_cfg (with DMA).
   The milliseconds the firmware adds are paired differences (firmware run - direct run of
   the same round), given as median (min-max).
2. load path, `hello` padded to MIB MiB with a section that is not loaded (objcopy
   --add-section, or appended bytes without objcopy): it still runs, but the whole file
   travels as module 0. Direct PVH boot, firmware with fw_cfg DMA, and firmware without DMA
   (the firmware then reads through the data port, `rep insb`: one exit per byte on
   unicorn, per page on KVM); the cost of going without DMA is again a paired difference.

Runs are interleaved round-robin over every row of both parts after one warm-up round; an
engine or firmware that is missing leaves its rows in the tables, saying why.

    vmm bench boot [--runs 5] [--count MIB] [--json PATH]
"""
import os
import shutil
import subprocess
import time
from pathlib import Path

from .. import paths
from ..errors import UsageError, VmmError
from ..scratch import make_folder
from .harness import (FAILED, OK, Row, RunFailed, Unavailable, describe_machine, engine_unavailable, interleave,
                      progress_printer, report, require_guest, status_text, summary, table)

PROGRAM = "hello"
EXPECTED = b"hello from ring 3\n"
ENGINES = ("unicorn", "kvm")
DEFAULT_RUNS = 5
DEFAULT_PAD_MIB = 4             # no-DMA load: about 4 s on unicorn, 1.7 s on KVM here
MAX_PAD_MIB = 32
RUN_TIMEOUT = 300.0
DIRECT, FIRMWARE, FIRMWARE_NO_DMA = "direct", "firmware", "firmware-nodma"
MODE_LABELS = {DIRECT: "direct PVH boot", FIRMWARE: "firmware, fw_cfg DMA",
               FIRMWARE_NO_DMA: "firmware, no DMA (rep insb)"}


class _SerialClock:
    """Stands in front of the UART's output callback and notes when each byte came."""

    def __init__(self, inner):
        self.inner = inner
        self.times = []

    def __call__(self, value):
        self.times.append(time.monotonic())
        self.inner(value)


def boot_once(engine: str, mode: str, program: str, expected: bytes = EXPECTED) -> dict:
    """One Machine run: {"setup", "first_byte", "program_byte", "total"} in seconds from the
    start of Machine creation."""
    from ..config import MachineConfig
    from ..machine import Machine
    firmware = None if mode == DIRECT else str(paths.DEFAULT_FIRMWARE)
    config = MachineConfig(kernel=str(paths.DEFAULT_KERNEL), initrd=program, accel=engine, serial="none",
                           timeout=RUN_TIMEOUT, firmware=firmware, fw_cfg_dma=mode != FIRMWARE_NO_DMA)
    try:
        vm = Machine(config)
    except VmmError as error:
        raise RunFailed(f"{engine} {mode}: {error}") from None
    try:
        uart = vm.uart
        if not callable(getattr(uart, "_output", None)):
            raise Unavailable("cannot time the serial output: Uart16550 has no _output callback")
        clock = uart._output = _SerialClock(uart._output)
        result = vm.run()
    finally:
        vm.close()
    serial = result.serial
    if result.exit_status != 0 or not serial.endswith(expected):
        raise RunFailed(f"{engine} {mode}: {result.reason} status {result.status} ({result.detail}), "
                        f"output {serial[:100]!r}")
    head = serial[:-len(expected)]
    if head and (mode == DIRECT or not head.endswith(b"\n")):
        raise RunFailed(f"{engine} {mode}: output {serial[:100]!r} is not "
                        + ("" if mode == DIRECT else "a banner line and then ") + f"{expected!r}")
    if len(clock.times) != len(serial):
        raise RunFailed(f"{engine} {mode}: {len(clock.times)} bytes timed, {len(serial)} received "
                        "(output that bypassed the UART)")
    s = result.stats
    return {"setup": s["setup_seconds"], "first_byte": clock.times[0] - vm.created,
            "program_byte": clock.times[len(head)] - vm.created, "total": s["total_seconds"]}


class BootRow(Row):
    def __init__(self, part, engine, mode, program_key):
        self.part, self.engine, self.mode, self.program_key = part, engine, mode, program_key
        self.name = f"{part}/{engine}/{mode}"
        self.label = f"{engine}, {MODE_LABELS[mode]}"

    def prepare(self, context):
        reason = engine_unavailable(self.engine)
        if reason is not None:
            raise Unavailable(reason)
        if self.mode != DIRECT and not paths.DEFAULT_FIRMWARE.exists():
            raise Unavailable(f"firmware not built: {paths.DEFAULT_FIRMWARE} (`make -C firmware`)")
        if context.get(self.program_key) is None:
            raise Unavailable(context.get(f"{self.program_key}_reason", "no program"))

    def measure(self, context):
        return boot_once(self.engine, self.mode, str(context[self.program_key]))



def all_rows(engines=ENGINES) -> list:
    rows = []
    for engine in engines:
        rows += [BootRow("firmware", engine, DIRECT, "hello"), BootRow("firmware", engine, FIRMWARE, "hello")]
    for engine in engines:
        rows += [BootRow("load", engine, mode, "padded") for mode in (DIRECT, FIRMWARE, FIRMWARE_NO_DMA)]
    return rows


def make_padded(source: Path, target: Path, pad_bytes: int) -> str:
    """Copy of `source` grown by pad_bytes that are not loaded: how it was done."""
    pad = target.with_suffix(".pad")
    pad.write_bytes(os.urandom(pad_bytes))
    objcopy = shutil.which("objcopy")
    if objcopy:
        proc = subprocess.run([objcopy, "--add-section", f".pad={pad}", "--set-section-flags", ".pad=noload,readonly",
                               str(source), str(target)], capture_output=True, timeout=60)
        if proc.returncode == 0:
            return "objcopy --add-section .pad (not loaded)"
    target.write_bytes(source.read_bytes() + pad.read_bytes())
    return "bytes appended after the ELF's last section (not loaded)"


def summarize(samples, key):
    values = [s[key] for s in samples if s.get(key) is not None]
    return summary(values) if values else None


def paired(a_samples, b_samples, key):
    """Summary of b - a over the runs both rows made (the same rounds)."""
    diffs = [b[key] - a[key] for a, b in zip(a_samples, b_samples)
             if a.get(key) is not None and b.get(key) is not None]
    return summary(diffs) if diffs else None


def run(runs: int = DEFAULT_RUNS, pad_mib: int = DEFAULT_PAD_MIB, warmup: int = 1, engines=ENGINES,
        progress=None) -> dict:
    if runs < 1:
        raise UsageError("--runs must be at least 1")
    if not 1 <= pad_mib <= MAX_PAD_MIB:
        raise UsageError(f"--count (MiB the padded program grows by) must be 1..{MAX_PAD_MIB}")
    require_guest(PROGRAM)
    hello = paths.program_path(PROGRAM)
    rows = all_rows(engines)
    workdir = Path(make_folder("bench-boot"))
    try:
        padded = workdir / f"{PROGRAM}-pad{pad_mib}M"
        how = make_padded(hello, padded, pad_mib << 20)
        context = {"hello": hello, "padded": padded}
        state = interleave(rows, runs, warmup, context, progress, part="boot")
        padded_size = padded.stat().st_size
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return assemble(rows, state, runs, warmup, engines, pad_mib, padded_size, how)


def assemble(rows, state, runs, warmup, engines, pad_mib, padded_size, how) -> dict:
    out = {}
    for row in rows:
        entry = state[row.name]
        ok = entry["status"] == OK and entry["samples"]
        samples = entry["samples"] if ok else []
        out[row.name] = {"name": row.name, "label": row.label, "part": row.part, "engine": row.engine,
                         "mode": row.mode, "status": entry["status"], "reason": entry["reason"],
                         **{key: summarize(samples, key) for key in ("setup", "first_byte", "program_byte", "total")},
                         "samples": samples}
    firmware, load = [], []
    for engine in engines:
        direct, fw = out[f"firmware/{engine}/{DIRECT}"], out[f"firmware/{engine}/{FIRMWARE}"]
        firmware.append({"engine": engine, "direct": direct, "firmware": fw,
                         "firmware_adds": {key: paired(direct["samples"], fw["samples"], key)
                                           for key in ("total", "program_byte")}})
        rows3 = {mode: out[f"load/{engine}/{mode}"] for mode in (DIRECT, FIRMWARE, FIRMWARE_NO_DMA)}
        load.append({"engine": engine, **rows3,
                     "no_dma_adds": {key: paired(rows3[FIRMWARE]["samples"], rows3[FIRMWARE_NO_DMA]["samples"], key)
                                     for key in ("total", "program_byte")}})
    kernel_size = paths.DEFAULT_KERNEL.stat().st_size
    return {"benchmark": "boot", "program": PROGRAM, "runs": runs, "warmup_rounds": warmup,
            "order": "interleaved round-robin", "engines": list(engines),
            "timing": "in-process Machine, seconds from the start of Machine creation",
            "padded_program": {"pad_mib": pad_mib, "bytes": padded_size, "how": how},
            "kernel_bytes": kernel_size, "machine": describe_machine(),
            "firmware": firmware, "load": load}


def _spread(summary, signed=False) -> str:
    if summary is None:
        return ""
    f = "{:+.1f}" if signed else "{:.1f}"
    return (f"{f.format(summary['median'] * 1000)} ({f.format(summary['min'] * 1000)} to "
            f"{f.format(summary['max'] * 1000)})")


def format_report(result: dict) -> str:
    machine = result["machine"]
    lines = [f"{machine['cpu_model']}, {machine['cpus']} CPUs, Linux {machine['kernel']}, KVM: {machine['kvm']}",
             "",
             f"firmware vs direct PVH boot, `{result['program']}`: {result['runs']} runs per row, {result['order']}, "
             f"after {result['warmup_rounds']} warm-up round(s); ms from the start of Machine creation, "
             "median (min to max)", ""]
    notes = []
    headers = ["engine", "boot", "status", "total ms", "first serial byte ms", "program's first byte ms"]
    body = []
    for part in result["firmware"]:
        for row in (part["direct"], part["firmware"]):
            status = status_text(row, notes)
            body.append([part["engine"], MODE_LABELS[row["mode"]], status, _spread(row["total"]),
                         _spread(row["first_byte"]), _spread(row["program_byte"])])
        adds = part["firmware_adds"]
        body.append([part["engine"], "firmware adds (paired)", "", _spread(adds["total"], True), "",
                     _spread(adds["program_byte"], True)])
    lines.append(table(headers, body, align="<<<>>>"))
    lines.append("first serial byte: the firmware's banner on a firmware boot; program's first byte: after it "
                 "(firmware handed over, kernel booted, program started).")
    lines.append("")
    padded = result["padded_program"]
    lines.append(f"kernel + program load: `{result['program']}` padded to {padded['bytes'] / (1 << 20):.1f} MiB "
                 f"({padded['how']}), kernel {result['kernel_bytes'] / 1024:.0f} KiB; same runs and order")
    lines.append("")
    headers = ["engine", "boot", "status", "setup ms", "program's first byte ms", "total ms"]
    body = []
    for part in result["load"]:
        for mode in (DIRECT, FIRMWARE, FIRMWARE_NO_DMA):
            row = part[mode]
            status = status_text(row, notes)
            body.append([part["engine"], MODE_LABELS[mode], status, _spread(row["setup"]),
                         _spread(row["program_byte"]), _spread(row["total"])])
        adds = part["no_dma_adds"]
        body.append([part["engine"], "no DMA adds (paired)", "", "", _spread(adds["program_byte"], True),
                     _spread(adds["total"], True)])
    lines.append(table(headers, body, align="<<<>>>"))
    lines.append("setup: Machine creation (a direct boot loads the kernel and the program here; a firmware boot "
                 "only maps the firmware and offers the files on fw_cfg).")
    lines.extend(notes)
    return "\n".join(lines)


def any_failed(result: dict) -> bool:
    rows = [part[key] for part in result["firmware"] for key in ("direct", "firmware")]
    rows += [part[mode] for part in result["load"] for mode in (DIRECT, FIRMWARE, FIRMWARE_NO_DMA)]
    return any(row["status"] == FAILED for row in rows)


def main(runs: int = DEFAULT_RUNS, pad_mib: int = DEFAULT_PAD_MIB, json_path=None) -> int:
    """Print both tables (what `vmm bench boot` runs); write JSON if asked. Exit status 0, or 1
    if a row failed (rows that are only unavailable do not count)."""
    result = run(runs, pad_mib, progress=progress_printer)
    return report(result, format_report(result), json_path, failed=any_failed(result))


if __name__ == "__main__":
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--pad-mib", type=int, default=DEFAULT_PAD_MIB)
    parser.add_argument("--json", default=None)
    arguments = parser.parse_args()
    raise SystemExit(main(arguments.runs, arguments.pad_mib, arguments.json))
