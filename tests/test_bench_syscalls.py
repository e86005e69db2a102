"""vmm bench syscalls: the rows are measured, and the kernel's ring-0 instructions per call are
counted (deterministic, unlike the times): the issue's goal is a getppid under 150; the thread
rows' counts are held near what they were measured at."""
import pytest

from vmm.bench import syscalls
from vmm.machine import probe

GETPPID_GOAL = 150          # ring-0 instructions for a getppid round trip (issue 13)
FUTEX_ROUND_TRIP_BOUND = 1500       # measured ~950 on 2026-12-04 (issue 15): a guard against regressions
THREAD_CREATE_JOIN_BOUND = 8000     # measured ~5,200


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
    # Issue 15: a futex wake-up round trip between two threads (two WAKEs, two WAITs, two
    # switches) measured ~950, a thread create + join ~5,200: held within half again.
    assert 100 < counts["futex"][0] < FUTEX_ROUND_TRIP_BOUND
    assert 1000 < counts["thread"][0] < THREAD_CREATE_JOIN_BOUND


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
