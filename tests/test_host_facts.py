"""vmm/host/facts.py: slow host measurements remembered between runs, keyed by what they
depend on; a bad or missing file only means measuring again."""
import os

import pytest

from vmm.host import facts


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv(facts.DISABLE_ENV, raising=False)
    monkeypatch.setattr(facts, "_memory", {})
    return tmp_path / "pyvmm" / "host-facts"


def counting(value):
    calls = []

    def measure():
        calls.append(1)
        return value
    return measure, calls


def test_a_fact_is_measured_once_and_read_back_by_the_next_process(store, monkeypatch):
    measure, calls = counting("2596000")
    assert facts.remembered("tsc-khz boot=A", measure) == "2596000"
    assert store.read_text() == "tsc-khz boot=A\t2596000\n"
    monkeypatch.setattr(facts, "_memory", {})                # as a new process
    assert facts.remembered("tsc-khz boot=A", measure) == "2596000"
    assert len(calls) == 1


def test_a_new_key_is_a_new_measurement_and_old_lines_are_bounded(store, monkeypatch):
    for boot in range(facts.MAX_LINES + 5):
        facts.remembered(f"tsc-khz boot={boot}", lambda: "1")
    lines = store.read_text().splitlines()
    assert len(lines) == facts.MAX_LINES and lines[-1] == f"tsc-khz boot={facts.MAX_LINES + 4}\t1"


def test_a_garbled_or_unwritable_file_only_means_measuring(store, monkeypatch):
    store.parent.mkdir(parents=True)
    store.write_bytes(b"\xff\xfe garbage without tabs\n")
    measure, calls = counting("7")
    assert facts.remembered("k", measure) == "7" and calls == [1]
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/no-such-place")
    monkeypatch.setattr(facts, "_memory", {})
    assert facts.remembered("k", measure) == "7" and calls == [1, 1]


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_a_file_that_is_not_a_small_regular_file_is_never_read(store, kind):
    """A FIFO would block the open for ever, /dev/zero would never end (issue 20): each
    only means measuring, and the fact is then stored in a regular file of our own."""
    store.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(store)
    elif kind == "dev-zero":
        os.symlink("/dev/zero", store)
    else:
        with open(store, "wb") as file:
            file.write(b"k\t1\n")
            file.truncate(10 << 30)                     # sparse: 10 GiB
    measure, calls = counting("5")
    assert facts.remembered("k", measure) == "5" and calls == [1]
    assert not store.is_symlink() and store.read_text() == "k\t5\n"


def test_it_can_be_turned_off(store, monkeypatch):
    monkeypatch.setenv(facts.DISABLE_ENV, "1")
    measure, calls = counting("3")
    assert facts.remembered("k", measure) == "3"
    assert not store.exists()


def test_keys_name_the_boot_and_the_file():
    assert len(facts.boot_id()) == 36
    assert facts.file_identity(__file__) != facts.file_identity(facts.__file__)
