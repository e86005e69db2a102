"""Shared helpers for the OCI runtime tests: a busybox root file system, bundles, the runtime's
command line, and what a container may leave behind (mounts, cgroups, processes, state).

The root file system is Debian's busybox-static binary with its applets as symlinks: a program
nobody on the team wrote (`make peers` installs it). Containers need root and every namespace
kind; tests skip, with the reason, where that is missing.
"""
import copy
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from vmm.container import probe
from vmm.container.rootfs import elf_interpreter
from vmm.oci.features import default_spec

REPO = Path(__file__).resolve().parent.parent
VMM_OCI = str(Path(sys.executable).parent / "vmm-oci")
VMM_OCI_VM = str(Path(sys.executable).parent / "vmm-oci-vm")
TIMEOUT = 60


def require_containers() -> None:
    reason = probe()
    if reason is not None:
        pytest.skip(f"containers unavailable here: {reason}")


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        pytest.skip("busybox not installed (make peers installs busybox-static)")
    if elf_interpreter(path):
        pytest.skip(f"{path} is dynamically linked; the tests need busybox-static (make peers)")
    return path


def make_rootfs(directory: Path, with_dirs=True) -> Path:
    """busybox and its applets in /bin; with_dirs=False leaves out /proc, /dev, /sys, /etc, /tmp
    (the runtime must make the mount points)."""
    source = busybox()
    (directory / "bin").mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)              # pytest's directories are 0700: another uid could not enter "/"
    shutil.copy2(source, directory / "bin" / "busybox")
    applets = subprocess.run([source, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for applet in applets:
        link = directory / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    if with_dirs:
        for name in ("proc", "dev", "sys", "etc", "tmp"):
            (directory / name).mkdir(exist_ok=True)
        (directory / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/sh\n")
    return directory


def base_spec(args, terminal=False) -> dict:
    """runc's default config (vmm-oci spec), writable root, no terminal, a hostname, our args."""
    spec = copy.deepcopy(default_spec())
    spec["process"]["args"] = list(args)
    spec["process"]["terminal"] = terminal
    spec["root"]["readonly"] = False
    return spec


def make_bundle(directory: Path, rootfs: Path, spec: dict) -> Path:
    """BUNDLE/config.json with root.path the absolute ROOTFS (runc refuses a symlinked root)."""
    directory.mkdir(parents=True, exist_ok=True)
    spec = dict(spec, root=dict(spec.get("root") or {}, path=str(Path(rootfs).resolve())))
    (directory / "config.json").write_text(json.dumps(spec))
    return directory


class Runtime:
    """`vmm-oci --root ROOT ...` with its own state directory (so tests never see others' containers)."""

    def __init__(self, root: Path, command=VMM_OCI, log=None, log_format=None):
        self.root, self.command = str(root), command
        self.log, self.log_format = log, log_format

    def argv(self, *args):
        prefix = [self.command, "--root", self.root]
        if self.log:
            prefix += ["--log", str(self.log)]
        if self.log_format:
            prefix += ["--log-format", self.log_format]
        return prefix + [str(a) for a in args]

    def run(self, *args, check=False, **options):
        """Run a command; its stdout and stderr go to files, not pipes: a container created here
        inherits them and keeps them open, and a pipe would never see its end."""
        options.setdefault("timeout", TIMEOUT)
        options.setdefault("stdin", subprocess.DEVNULL)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            process = subprocess.run(self.argv(*args), stdout=out, stderr=err, **options)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(process.args, process.returncode,
                                                 out.read().decode(errors="replace"), err.read().decode(errors="replace"))
        if check and result.returncode != 0:
            raise AssertionError(f"vmm-oci {' '.join(map(str, args))} -> {result.returncode}: {result.stderr}")
        return result

    def state(self, container_id) -> dict:
        return json.loads(self.run("state", container_id, check=True).stdout)

    def status(self, container_id) -> str:
        return self.state(container_id)["status"]


# --- what must not be left behind ---------------------------------------------------------------------

def mount_points() -> set:
    with open("/proc/self/mountinfo") as file:
        return {line.split()[4] for line in file}


def cgroup_dirs(name_part: str) -> list:
    """Cgroup directories (any hierarchy) whose name contains name_part."""
    return [path for path in glob.glob("/sys/fs/cgroup/**/*", recursive=True)
            if name_part in os.path.basename(path) and os.path.isdir(path)]


def libpod_cgroups() -> set:
    """podman's container cgroups (cgroupfs manager: libpod_parent/libpod-ID in each hierarchy)."""
    return set(glob.glob("/sys/fs/cgroup/*/libpod_parent/libpod-*") + glob.glob("/sys/fs/cgroup/libpod_parent/libpod-*"))


def processes_mentioning(text: str) -> list:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as file:
                    if text.encode() in file.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


# Mount points that are podman's (its storage, its network namespaces): other engineers' suites
# run podman on this shared host at any time, and the runtime under test never mounts there.
PODMAN_MOUNTS = ("/var/lib/containers/storage", "/run/containers/storage", "/run/netns")


class Leftovers:
    """Snapshot before a test; check() says what the test's containers left after it."""

    def __init__(self, root: Path, marker: str, foreign_mounts=PODMAN_MOUNTS):
        """foreign_mounts: prefixes of mount points that belong to someone else (podman's)."""
        self.root, self.marker, self.foreign = root, marker, tuple(foreign_mounts)
        self.mounts = mount_points()

    def check(self) -> list:
        problems = []
        new_mounts = {m for m in mount_points() - self.mounts if not m.startswith(self.foreign) or not self.foreign}
        if new_mounts:
            problems.append(f"mounts left: {sorted(new_mounts)}")
        if os.path.isdir(self.root) and os.listdir(self.root):
            problems.append(f"state left in {self.root}: {os.listdir(self.root)}")
        cgroups = cgroup_dirs(self.marker)
        if cgroups:
            problems.append(f"cgroups left: {cgroups}")
        processes = processes_mentioning(str(self.root))
        if processes:
            problems.append(f"processes left: {processes}")
        return problems
