"""`vmm bench engines` and `vmm bench boot` end to end with tiny sizes: every row present,
each either measured with sane numbers or marked unavailable with a reason, none failed."""
import json
import subprocess
import sys

import pytest

from vmm import paths
from vmm.bench import boot, engines, engines_compute, startup

COMPUTE_ROWS = ["vmm-unicorn", "raw-unicorn", "qemu-tcg", "vmm-kvm", "host"]
PIO_ROWS = ["vmm-unicorn", "bare-hook", "bare-raw"]
HELLO_ROWS = ["api-unicorn", "api-kvm", "vmm-unicorn", "vmm-kvm", "qemu-tcg", "qemu-kvm"]


def require_guest(*programs):
    for path in (paths.DEFAULT_KERNEL, *(paths.program_path(p) for p in programs)):
        if not path.exists():
            pytest.fail(f"guest not built ({path}): run `make test`, which builds it")


def check_rows(rows, names, measured_key):
    assert [row["name"] for row in rows] == names
    for row in rows:
        assert row["status"] in ("ok", "unavailable"), row
        if row["status"] == "ok":
            s = row[measured_key]
            assert s is not None and s["min"] <= s["median"] <= s["max"], row
            assert row["reason"] is None
        else:
            assert row["reason"] and row[measured_key] is None, row


@pytest.fixture(scope="module")
def engines_cli(tmp_path_factory):
    """One real `vmm bench engines --runs 1 --count 1 --json PATH`: (process, parsed JSON)."""
    require_guest("compute", "hello")
    path = tmp_path_factory.mktemp("bench") / "engines.json"
    proc = subprocess.run([sys.executable, "-m", "vmm", "bench", "engines", "--runs", "1", "--count", "1",
                           "--json", str(path)], capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    if not path.exists():
        pytest.fail(f"no JSON written; status {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return proc, json.loads(path.read_text())


def test_engines_cli_runs_every_part(engines_cli):
    proc, result = engines_cli
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-2000:]
    assert result["benchmark"] == "engines"
    out = proc.stdout.decode()
    for part in ("compute", "pio", "hello"):
        for row in result[part]["rows"]:
            assert row["label"] in out, row["label"]
            if row["status"] != "ok":
                assert row["reason"] in out


def test_compute_rows(engines_cli):
    _, result = engines_cli
    compute = result["compute"]
    assert compute["mib"] == 1 and compute["runs"] == 1
    check_rows(compute["rows"], COMPUTE_ROWS, "gross_seconds")
    if compute["instructions"] is not None:         # perf or valgrind was there
        assert 50e6 < compute["instructions"] < 120e6, compute     # about 76 M per MiB
    else:
        assert compute["instruction_count_note"]
    by_name = {row["name"]: row for row in compute["rows"]}
    # The software engine and the floor always run here (unicorn is a dependency).
    for name in ("vmm-unicorn", "raw-unicorn", "host"):
        assert by_name[name]["status"] == "ok", by_name[name]
    instructions = compute["instructions"]
    for row in compute["rows"]:
        if row["status"] != "ok":
            continue
        assert len(row["samples"]) == 1 and row["base_seconds"]["min"] > 0
        net = row["samples"][0]["gross"] - row["samples"][0]["base"]
        if instructions and net > 0:        # the rate is the host's own division of the samples
            assert row["instructions_per_second"]["median"] == pytest.approx(instructions / net)
        else:                               # no rate, and the row says why
            assert row["instructions_per_second"] is None and (row["rate_note"] or not instructions)
    rates = {name: by_name[name]["instructions_per_second"] for name in ("vmm-unicorn", "qemu-tcg")}
    if all(rates.values()):
        assert compute["goal"]["ratio"] == pytest.approx(rates["vmm-unicorn"]["median"] / rates["qemu-tcg"]["median"])
        assert compute["goal"]["met"] == (compute["goal"]["ratio"] >= 0.5)
    else:
        assert compute["goal"]["ratio"] is None and compute["goal"]["note"]


def test_pio_rows(engines_cli):
    _, result = engines_cli
    check_rows(result["pio"]["rows"], PIO_ROWS, "rate")
    assert all(row["status"] == "ok" for row in result["pio"]["rows"])
    rows = {row["name"]: row for row in result["pio"]["rows"]}
    vmm, raw, hook = (rows[name]["rate"]["median"] for name in ("vmm-unicorn", "bare-raw", "bare-hook"))
    # Judged against the raw-callback loop (the engine's own kind of callback), hook_add beside it.
    assert result["pio"]["goal"]["ratio"] == pytest.approx(vmm / raw)
    assert result["pio"]["goal"]["met"] == (vmm / raw >= 0.5)
    assert result["pio"]["against_hook_loop"] == pytest.approx(vmm / hook)


def test_hello_rows(engines_cli):
    _, result = engines_cli
    check_rows(result["hello"]["rows"], HELLO_ROWS, "seconds")
    by_name = {row["name"]: row for row in result["hello"]["rows"]}
    assert by_name["api-unicorn"]["status"] == "ok"


def test_raw_unicorn_runs_compute():
    """The bare-unicorn harness gives the program's own output and status."""
    require_guest("compute")
    program = paths.program_path("compute")
    host = subprocess.run([str(program), "1"], capture_output=True)
    seconds, status, output = engines_compute.run_raw_unicorn(program, ["compute", "1"])
    assert (status, output) == (0, host.stdout) and seconds > 0
    assert engines_compute.run_raw_unicorn(program, ["compute", "0"])[1:] == (2, b"compute: size must be 1..4096 MiB\n")


def test_pio_loops_count_every_round_trip():
    assert engines.bare_pio_loop(1000) > 0
    assert engines.bare_pio_loop(1000, raw=True) > 0
    assert engines.vmm_pio_loop(1000) > 0


def test_missing_tool_is_a_row_with_a_reason(monkeypatch):
    require_guest("compute")
    monkeypatch.setattr(startup.shutil, "which", lambda name: None)
    monkeypatch.setattr(engines_compute.shutil, "which", lambda name: None)
    result = engines_compute.run_compute(runs=1, mib=1, warmup=0, rows=[engines_compute.QemuCompute("qemu-tcg", "QEMU", "tcg"),
                                                               engines_compute.HostCompute()])
    rows = {row["name"]: row for row in result["rows"]}
    assert rows["qemu-tcg"]["status"] == "unavailable" and "not installed" in rows["qemu-tcg"]["reason"]
    assert rows["host"]["status"] == "ok"
    assert result["instructions"] is None and "not installed" in result["instruction_count_note"]
    report = engines_compute.format_compute(result)
    assert "not available [1]" in report and "n/a" in report


def test_boot_cli(tmp_path):
    require_guest("hello")
    path = tmp_path / "boot.json"
    proc = subprocess.run([sys.executable, "-m", "vmm", "bench", "boot", "--runs", "1", "--count", "1",
                           "--json", str(path)], capture_output=True, stdin=subprocess.DEVNULL, timeout=300)
    assert path.exists(), proc.stderr.decode()[-2000:]
    assert proc.returncode == 0, proc.stdout.decode()[-3000:] + proc.stderr.decode()[-2000:]
    result = json.loads(path.read_text())
    assert result["benchmark"] == "boot" and result["engines"] == list(boot.ENGINES)
    assert result["padded_program"]["bytes"] > 1 << 20
    out = proc.stdout.decode()
    for part in result["firmware"]:
        for key in ("direct", "firmware"):
            row = part[key]
            assert row["status"] in ("ok", "unavailable"), row
            if row["status"] == "ok":
                assert 0 < row["first_byte"]["min"] <= row["program_byte"]["min"] <= row["total"]["min"]
            else:
                assert row["reason"] in out
        if part["direct"]["status"] == part["firmware"]["status"] == "ok":
            assert part["firmware_adds"]["total"] is not None
            # The firmware's banner comes before the program's first byte; directly, they are one byte.
            assert part["firmware"]["first_byte"]["max"] < part["firmware"]["program_byte"]["min"]
            assert part["direct"]["first_byte"] == part["direct"]["program_byte"]
    for part in result["load"]:
        rows = [part[mode] for mode in (boot.DIRECT, boot.FIRMWARE, boot.FIRMWARE_NO_DMA)]
        assert all(row["status"] in ("ok", "unavailable") for row in rows), rows
        if all(row["status"] == "ok" for row in rows):
            assert part["no_dma_adds"]["program_byte"]["median"] > 0      # 1 MiB byte by byte is slower
    unicorn = next(part for part in result["firmware"] if part["engine"] == "unicorn")
    assert unicorn["direct"]["status"] == "ok"


def test_boot_unavailable_engine(monkeypatch):
    """An engine that cannot run here leaves its rows in the tables, saying why."""
    require_guest("hello")
    monkeypatch.setattr(boot, "engine_unavailable", lambda accel: "no such engine here" if accel == "kvm" else None)
    result = boot.run(runs=1, pad_mib=1, warmup=0, engines=("kvm",))
    rows = [result["firmware"][0]["direct"], result["load"][0][boot.FIRMWARE_NO_DMA]]
    assert all(row["status"] == "unavailable" and row["reason"] == "no such engine here" for row in rows)
    assert "not available [1]" in boot.format_report(result)
