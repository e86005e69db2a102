"""vmm bench linux: the report's arithmetic and verdict, and one real QEMU row (the
software-engine rows cost tens of seconds a boot; tests/test_linux.py boots those)."""
import shutil

import pytest

import linux_guest as lg
from vmm.bench import linux


def row(name, first, off):
    return {"name": name, "label": name, "status": "ok", "reason": None,
            "first_line": {"min": first, "median": first, "max": first},
            "poweroff": {"min": off, "median": off, "max": off}}


def test_report_gives_ratios_to_qemu_and_the_verdict():
    result = {"runs": 1, "rows": [row("vmm-unicorn", 5.0, 6.0), row("qemu-tcg", 2.0, 3.0),
                                  {"name": "vmm-kvm", "label": "vmm run, kvm", "status": "unavailable",
                                   "reason": "KVM here is kvm_pvm"}]}
    for r in result["rows"][:2]:
        for key in ("first_line", "poweroff"):
            r[f"{key}_ratio"] = r[key]["median"] / result["rows"][1][key]["median"]
    text = linux.format_report(result)
    assert "2.5x" in text and "2.0x" in text
    assert "goal: unicorn within 2x QEMU TCG: NOT met (2.5x)" in text
    assert "not available [1]" in text and "kvm_pvm" in text


def test_a_qemu_run_is_timed_to_the_init_script_and_to_power_off():
    lg.require_build()
    if shutil.which("qemu-system-x86_64") is None:
        pytest.skip("qemu-system-x86_64 not installed (run `make peers`)")
    result = linux.run(runs=1, warmup=0, rows=[linux.QemuLinux()])
    (qemu,) = result["rows"]
    assert qemu["status"] == "ok", qemu["reason"]
    assert 0 < qemu["first_line"]["median"] < qemu["poweroff"]["median"] < linux.RUN_TIMEOUT
