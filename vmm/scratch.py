"""Temporary folders for one run (scratch disks, benchmark work), named after their owner, and
the sweep that removes those an earlier run could not.

    with scratch_folder("disks") as path:     # $TMPDIR/pyvmm-disks-<pid>-<random>
        ...
    sweep()                                   # folders whose owner process is gone

A run that ends normally, by an exception or by a handled signal (vmm/signals.py) removes its
folder itself; one killed by SIGKILL cannot, and the next `vmm test`, `vmm bench` or
`vmm container` sweeps it: a folder of ours (by name, owned by this user, not a symbolic link)
whose <pid> no longer runs.
"""
import os
import re
import shutil
import tempfile
from contextlib import contextmanager

from .host.process import alive

PREFIX = "pyvmm-"
_NAME = re.compile(r"pyvmm-[a-z]+(?:-[a-z]+)*-(\d+)-[^/]+")


def make_folder(purpose: str) -> str:
    """A new folder $TMPDIR/pyvmm-<purpose>-<pid>-<random> (the caller removes it)."""
    if not re.fullmatch(r"[a-z]+(?:-[a-z]+)*", purpose):
        raise ValueError(f"scratch folder purpose {purpose!r}: lower-case words and dashes only")
    return tempfile.mkdtemp(prefix=f"{PREFIX}{purpose}-{os.getpid()}-")


@contextmanager
def scratch_folder(purpose: str):
    path = make_folder(purpose)
    try:
        yield path
    finally:
        remove(path)


def remove(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def sweep(folder: str | None = None) -> list:
    """Remove the scratch folders in `folder` (default: the temporary folder) whose owner
    process is gone; returns their paths."""
    folder = folder or tempfile.gettempdir()
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        match = _NAME.fullmatch(name)
        if not match or alive(int(match.group(1))):
            continue
        path = os.path.join(folder, name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if not os.path.isdir(path) or os.path.islink(path) or st.st_uid != os.geteuid():
            continue
        remove(path)
        removed.append(path)
    return removed
