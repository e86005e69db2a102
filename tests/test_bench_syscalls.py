"""vmm bench syscalls: the rows are measured, and the kernel's ring-0 instructions per call are
counted (deterministic, unlike the times): the issue's goal is a getppid under 150."""
import pytest

from vmm.bench import syscalls
from vmm.machine import probe

GETPPID_GOAL = 150          # ring-0 instructions for a getppid round trip (issue 13)


def test_getppid_takes_under_150_ring0_instructions(kernel_path):
    """Counted on unicorn, with a code hook on the kernel image (`vmm bench syscalls` also
    counts on KVM by single-stepping, slowly: there syscall arrives as a #PF, a few
    instructions fewer than the SYSCALL entry)."""
    reason = probe("unicorn")
    if reason:
        pytest.skip(f"unicorn unavailable: {reason}")
    counts = syscalls.per_call_instructions("unicorn", calls=20)
    instructions, rep = counts["getppid"]
    assert 20 < instructions < GETPPID_GOAL and rep < 1
    # A 4 KiB pread64 of a boot-image file copies nothing in ring 0 (the copy window and the
    # ring-3 stub do it): no rep iterations per call, where unicorn can see them.
    instructions, rep = counts["pread"]
    assert instructions < 1000 and rep < 1


def test_the_benchmark_measures_every_row(kernel_path):
    engines = [e for e in ("kvm", "unicorn") if probe(e) is None]
    result = syscalls.run(engines, runs=1, calls={"host": 1000, "kvm": 50, "unicorn": 200}, count_instructions=False)
    rows = result["rows"]
    assert set(rows) == {"host", *(f"vmm-{e}" for e in engines)}
    for name, row in rows.items():
        if row["status"] == "unavailable":
            continue
        assert row["status"] == "ok", (name, row)
        for mode in syscalls.MODES:
            assert 0 < row["ns_per_call"][mode]["median"] < 1e8
    text = syscalls.format_result(result)
    assert "getppid round trip" in text and "4 KiB pread64" in text
