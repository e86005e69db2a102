"""`vmm bench startup` end to end (real VMs, QEMU, containers; 2 runs), its JSON, and the
shared statistics helpers. Rows whose tool is missing must still be there, saying so."""
import json
import subprocess
import sys

import pytest

from vmm import paths
from vmm.bench import harness, startup

ROW_NAMES = [row.name for row in startup.all_rows()]
VM_PROCESS_ROWS = {"vmm-kvm", "vmm-firmware", "vmm-unicorn", "qemu-kvm", "qemu-tcg"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One real `vmm bench startup --runs 2 --json PATH`: (process, parsed JSON)."""
    if not paths.DEFAULT_KERNEL.exists() or not (paths.PROGRAMS_BUILD / "hello").exists():
        pytest.fail("guest not built: run `make test`, which builds it")
    path = tmp_path_factory.mktemp("bench") / "startup.json"
    proc = subprocess.run([sys.executable, "-m", "vmm", "bench", "startup", "--runs", "2", "--json", str(path)],
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    if not path.exists():
        pytest.fail(f"no JSON written; status {proc.returncode}: {proc.stderr.decode()[-2000:]}")
    return proc, json.loads(path.read_text())


def test_every_row_present_in_order(bench):
    _, result = bench
    assert [row["name"] for row in result["rows"]] == ROW_NAMES


def test_no_row_failed(bench):
    proc, result = bench
    failed = {row["name"]: row["reason"] for row in result["rows"] if row["status"] == "failed"}
    assert not failed
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]


def test_row_fields(bench):
    _, result = bench
    assert result["runs"] == 2 and result["program"] == "hello"
    for row in result["rows"]:
        assert row["status"] in ("ok", "unavailable", "failed")
        assert row["kind"] in ("process", "in-process")
        if row["status"] == "ok":
            s = row["seconds"]
            assert 0 < s["min"] <= s["median"] <= s["max"], row
            assert len(row["times"]) == 2
            assert row["ratio_to_plain"] > 0 and row["ratio_to_fastest_vm"] > 0
            assert row["reason"] is None
        else:
            assert row["reason"], row
            assert row["seconds"] is None and row["ratio_to_plain"] is None
    fastest = result["fastest_vm"]
    assert fastest in VM_PROCESS_ROWS
    by_name = {row["name"]: row for row in result["rows"]}
    assert by_name[fastest]["ratio_to_fastest_vm"] == pytest.approx(1.0)
    assert by_name["plain"]["status"] == "ok" and by_name["plain"]["ratio_to_plain"] == pytest.approx(1.0)


def test_rss(bench):
    _, result = bench
    by_name = {row["name"]: row for row in result["rows"]}
    plain = by_name["plain"]["rss_kib"]
    if plain is not None:           # measured through the spawner: the benchmark's own RSS stays out
        assert plain["max"] < 8 * 1024, plain
        assert by_name["vmm-kvm"]["rss_kib"] is None or by_name["vmm-kvm"]["rss_kib"]["min"] > plain["max"]
    assert by_name["container-api"]["rss_kib"] is None


def test_machine_description(bench):
    _, result = bench
    machine = result["machine"]
    for key in ("cpu_model", "cpus", "kernel", "kvm_modules", "kvm", "versions"):
        assert key in machine
    assert set(machine["versions"]) >= {"python", "unicorn", "qemu", "crun", "runc"}


def test_table_and_bars_name_every_row(bench):
    proc, result = bench
    out = proc.stdout.decode()
    for row in result["rows"]:
        assert out.count(row["label"]) >= 2, row["label"]       # in the table and in the bars
        if row["status"] == "unavailable":
            assert "not available" in out and row["reason"] in out


def test_firmware_row_follows_the_cli(bench):
    """Unavailable, saying why, exactly when `vmm run` has no --firmware option."""
    _, result = bench
    row = next(row for row in result["rows"] if row["name"] == "vmm-firmware")
    help_text = subprocess.run([sys.executable, "-m", "vmm", "run", "--help"], capture_output=True).stdout
    if b"--firmware" not in help_text:
        assert row["status"] == "unavailable" and "firmware boot not built" in row["reason"]
    elif row["status"] != "ok":                      # no firmware image, or no KVM
        assert row["status"] == "unavailable" and row["reason"], row
    else:
        assert "--firmware" in row["command"]


def test_firmware_option_detection(tmp_path):
    image = tmp_path / "fw.bin"
    image.write_bytes(b"\xff" * 16)
    with pytest.raises(startup.Unavailable, match="firmware boot not built"):
        startup.firmware_arguments("  --initrd PROGRAM  guest program\n", image)
    assert startup.firmware_arguments("  --firmware PATH  boot through firmware\n", image) == ["--firmware", str(image)]
    assert startup.firmware_arguments("  --firmware [IMAGE]\n", image) == ["--firmware", str(image)]
    assert startup.firmware_arguments("  --firmware    boot through the built firmware\n", image) == ["--firmware"]
    assert startup.firmware_arguments("  --bios FILE, --firmware FILE\n", image) == ["--bios", str(image)]
    with pytest.raises(startup.Unavailable, match="not built"):
        startup.firmware_arguments("  --firmware PATH\n", tmp_path / "absent.bin")


def test_missing_tool_is_reported(monkeypatch):
    """A tool that is not installed gives an `unavailable` row with the reason, not a gap."""
    monkeypatch.setattr(startup.shutil, "which", lambda name: None)
    result = startup.run(runs=1, warmup=0, rows=[startup.Qemu("qemu-kvm", "QEMU", "kvm"), startup.Oci("crun"),
                                                  startup.Plain()])
    rows = {row["name"]: row for row in result["rows"]}
    assert rows["qemu-kvm"]["status"] == "unavailable" and "not installed" in rows["qemu-kvm"]["reason"]
    assert rows["crun"]["status"] == "unavailable"
    assert rows["plain"]["status"] == "ok" and rows["plain"]["rss_kib"] is None     # no gcc: no spawner
    report = startup.format_report(result)
    assert "not available [1]" in report and "not available [2]" in report


def test_failed_run_is_reported():
    class Wrong(startup.Plain):
        name, label = "wrong", "exits 42"

        def prepare(self, context):
            self.command = [str(paths.program_path("exitcode"))]
    result = startup.run(runs=1, warmup=0, rows=[Wrong(), startup.Plain()])
    row = result["rows"][0]
    assert row["status"] == "failed" and "exit status 42" in row["reason"] and row["seconds"] is None
    assert "FAILED [1]" in startup.format_report(result)


def test_vmm_run_rows_tell_an_absent_engine_from_a_failed_run(monkeypatch):
    """Unavailable only when the probe says so, before any run; a `vmm run` that exits 69
    (engine unavailable) although the probe found the engine is a failure, with its line."""
    monkeypatch.setattr(startup, "engine_unavailable", lambda accel: f"{accel}: not here (test)")
    result = startup.run(runs=1, warmup=0, rows=[startup.VmmRun("vmm-kvm", "vmm run, KVM", "kvm")])
    assert (result["rows"][0]["status"], result["rows"][0]["reason"]) == ("unavailable", "kvm: not here (test)")

    class Exited69:
        status = 69

        def stderr_line(self):
            return "vmm: error: /dev/kvm vanished"
    with pytest.raises(harness.RunFailed, match="exited 69 .* although the probe found unicorn: vmm: error: /dev/kvm"):
        startup.VmmRun("vmm-unicorn", "vmm run, unicorn", "unicorn").check(Exited69())


def test_harness_helpers():
    assert harness.summary([3, 1, 2]) == {"min": 1, "median": 2, "max": 3}
    assert harness.ratio(4, 2) == 2 and harness.ratio(None, 2) is None and harness.ratio(1, 0) is None
    text = harness.table(["a", "b"], [["x", "1"], ["long", None]])
    assert text.splitlines()[0].startswith("a") and text.splitlines()[2] == "x     1"
    chart = harness.bars([("a", 10.0, ""), ("bb", 5.0, ""), ("c", None, "missing")], width=10, unit=" ms")
    assert chart.splitlines() == ["a   ########## 10.0 ms", "bb  ##### 5.0 ms", "c   (missing)"]


def test_density_smoke(tmp_path):
    """`vmm bench density --count 10 --runs 1`: every mode present; the ones that ran are
    checked; in-process VMs report the guest RAM they hold and their cost beyond it."""
    path = tmp_path / "density.json"
    proc = subprocess.run([sys.executable, "-m", "vmm", "bench", "density", "--count", "10", "--runs", "1",
                           "--json", str(path)], capture_output=True, stdin=subprocess.DEVNULL, timeout=600)
    assert path.exists(), proc.stderr.decode()[-2000:]
    result = json.loads(path.read_text())
    assert [row["name"] for row in result["rows"]] == ["vm-threads-kvm", "vm-threads-unicorn", "bare-unicorn",
                                                       "vm-processes", "container-threads", "containers", "plain"]
    assert not [row for row in result["rows"] if row["status"] == "failed"], result["rows"]
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    for row in result["rows"]:
        assert row["instances"] == (10 if row["name"].startswith(("vm-threads", "bare")) else 2)
        if row["status"] == "ok":
            assert row["seconds"]["min"] > 0 and len(row["times"]) == 1
        assert row["label"] in proc.stdout.decode()
    by_name = {row["name"]: row for row in result["rows"]}
    assert by_name["vm-threads-unicorn"]["status"] == "ok"      # unicorn runs everywhere
    for name in ("vm-threads-kvm", "vm-threads-unicorn"):
        row = by_name[name]
        if row["status"] == "ok":
            guest = row["guest_ram_kib_per_instance"]["median"]
            assert 64 < guest < 64 * 1024                       # hello touches some, not all, of 64 MiB
            assert row["beyond_guest_ram_kib"]["median"] == pytest.approx(
                row["memory_kib_per_instance"]["median"] - guest, abs=1)
    assert [goal["what"].split(":")[0] for goal in result["goals"]] == [by_name["vm-threads-kvm"]["label"],
                                                                          by_name["vm-threads-unicorn"]["label"]]
