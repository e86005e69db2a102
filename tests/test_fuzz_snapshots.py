"""The seeded fuzz test's snapshot corpus (issue 20): `vmm restore` of corrupted snapshots.

One real snapshot (`hello` saved on unicorn in the middle of its line) is corrupted three ways:
the manifest's bytes (caught by its checksum or its JSON), the manifest's values with the
checksum made to match again (so the loader's own checks of every register, size and device
state are what stands between the file and the VMM), and the guest-memory file (truncated,
grown, or bytes changed: the guest may then crash, which is reported). Every restore must end
as test_fuzz_inputs.py asks of a run: a documented status, no traceback, never 70, one line
for a VMM error.
"""
import copy
import json
import os
import random
import shutil
import subprocess
import sys

import pytest

from snapshot_points import Output, save_at
from test_fuzz_inputs import BOUND, GUEST_TIMEOUT, assert_documented_ending, mutate
from vmm.snapshot import manifest as mf

SEED = 20261205
CASES = 48
VALUES = [None, True, -1, 0, 1, 2**31, 2**63, 2**64, -2**63, 1e308, float("nan"), "", "x" * 4096, "0x10",
          [], [0] * 3, {}, {"a": 1}]


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    from vmm import paths
    if not paths.DEFAULT_KERNEL.exists():
        pytest.fail("guest kernel not built: run `make test`, which builds it")
    return save_at("hello", "unicorn", Output(9), str(tmp_path_factory.mktemp("snap") / "hello"), []).path


def leaves(node, path=()):
    """Every (path, value) of a JSON tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from leaves(value, path + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from leaves(value, path + (index,))
    else:
        yield path, node


def set_at(node, path, value):
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value


def corrupt(rnd: random.Random, directory: str) -> str:
    """Corrupt the snapshot copy in `directory`; returns what was done (for the failure message)."""
    manifest_path, memory_path = os.path.join(directory, mf.MANIFEST), os.path.join(directory, mf.MEMORY)
    kind = rnd.choice(["manifest-bytes", "manifest-values", "manifest-values", "memory"])
    if kind == "manifest-bytes":
        with open(manifest_path, "rb") as f:
            data = f.read()
        with open(manifest_path, "wb") as f:
            f.write(mutate(rnd, data))
        return kind
    if kind == "memory":
        size = os.path.getsize(memory_path)
        how = rnd.choice(["truncate", "grow", "bytes"])
        if how == "truncate":
            os.truncate(memory_path, rnd.randrange(size))
        elif how == "grow":
            os.truncate(memory_path, size + rnd.choice([1, 4096, 1 << 20]))
        else:
            with open(memory_path, "r+b") as f:
                for _ in range(rnd.randint(1, 64)):
                    f.seek(rnd.randrange(min(size, 4 << 20)))       # where the kernel and program live
                    f.write(bytes([rnd.randrange(256)]))
        return f"memory {how}"
    with open(manifest_path) as f:
        manifest = json.load(f)
    body = copy.deepcopy(manifest)
    body.pop("checksum", None)
    changed = []
    candidates = [path for path, _ in leaves(body) if path and path[0] not in ("format", "version")]
    for _ in range(rnd.randint(1, 3)):
        path = rnd.choice(candidates)
        value = rnd.choice(VALUES)
        set_at(body, path, value)
        changed.append(f"{'/'.join(map(str, path))}={str(value)[:20]}")
    body["checksum"] = mf.checksum({key: value for key, value in body.items() if key != "checksum"})
    with open(manifest_path, "w") as f:
        json.dump(body, f)
    return "values " + ", ".join(changed)


def cases():
    rnd = random.Random(SEED)
    return [(index, rnd.getrandbits(64)) for index in range(CASES)]


@pytest.mark.parametrize("index, seed", cases(), ids=[f"case_{i}" for i in range(CASES)])
def test_a_corrupted_snapshot_restores_or_ends_as_documented(index, seed, snapshot, tmp_path):
    rnd = random.Random(seed)
    directory = str(tmp_path / "snap")
    shutil.copytree(snapshot, directory)
    what = corrupt(rnd, directory)
    accel = rnd.choice(["unicorn", "auto"])
    command = [sys.executable, "-m", "vmm", "restore", directory, "--accel", accel, "--serial", "none",
               "--timeout", GUEST_TIMEOUT]
    proc = subprocess.run(command, capture_output=True, stdin=subprocess.DEVNULL, timeout=BOUND, cwd=str(tmp_path))
    assert_documented_ending(proc, f"case {index} ({what}, --accel {accel})")
