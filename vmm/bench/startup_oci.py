"""The start-up benchmark's rows for the project's OCI runtime, `vmm-oci`, and for podman using it.

  vmm-oci            `vmm-oci run` on the same OCI bundle as the runc and crun rows
  podman-runc        `podman run --rm IMAGE /bin/hello` with `--runtime runc`: what users type
  podman-vmm-oci     the same with `--runtime .venv/bin/vmm-oci` (namespaces)
  podman-vmm-oci-vm  the same with `--runtime .venv/bin/vmm-oci-vm` (the program in a microVM)

IMAGE is the benchmark's root file system (hello in /bin) imported with `podman import` once,
as localhost/pyvmm-bench:PID, and removed when the rows close. The podman rows pass
`--ulimit nofile=1024:1024 --ulimit nproc=1024:1024`: podman's default rlimits exceed this
machine's hard limits (README, "The OCI runtime"). A podman row's time is podman's whole run:
its own start-up, conmon, the runtime's create, start and delete, and the container.
"""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from .harness import Row, Unavailable
from .process import run_process, which

ULIMITS = ["--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024"]
IMAGE = f"localhost/pyvmm-bench:{os.getpid()}"
TIMEOUT = 120.0


def runtime_script(name: str) -> str:
    """The venv's console script `name` (vmm-oci, vmm-oci-vm), beside this interpreter."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise Unavailable(f"{path} is not installed (`make` installs the package's console scripts)")
    return str(path)


class _Image:
    """The podman image, imported by the first podman row to need it, removed with the last."""

    def __init__(self, rootfs: Path, workdir: Path):
        self.rootfs, self.workdir, self.users, self.ready = rootfs, workdir, 0, False

    def acquire(self) -> str:
        podman = which("podman")
        if os.geteuid() != 0:
            raise Unavailable("podman rows run rootful podman: they need root")
        if not self.ready:
            tarball = self.workdir / "image.tar"
            with tarfile.open(tarball, "w") as archive:
                for entry in sorted(os.listdir(self.rootfs)):
                    archive.add(self.rootfs / entry, arcname=entry)
            result = subprocess.run([podman, "import", str(tarball), IMAGE], capture_output=True, timeout=TIMEOUT)
            if result.returncode != 0:
                raise Unavailable(f"podman import failed: {result.stderr.decode(errors='replace').strip()[-200:]}")
            self.ready = True
        self.users += 1
        return podman

    def release(self) -> None:
        self.users -= 1
        if self.users == 0 and self.ready:
            subprocess.run(["podman", "rmi", "--force", IMAGE], capture_output=True, timeout=TIMEOUT)
            self.ready = False


class VmmOci(Row):
    """`vmm-oci run` on the benchmark's bundle, with its own state directory."""
    name = "vmm-oci"
    label = "vmm-oci run (OCI bundle, namespaces)"
    kind = "process"
    vm = False
    rss_measure = "peak RSS of the launched process tree (wait4 ru_maxrss: its largest process)"
    command = None

    def __init__(self, check):
        self.serial, self.check = 0, check

    def prepare(self, context):
        if os.geteuid() != 0:
            raise Unavailable("vmm-oci needs root here")
        self.path = runtime_script("vmm-oci")
        self.root = str(context["bundle"] / "vmm-oci-state")
        self.command = [self.path, "--root", self.root, "run", "--bundle", str(context["bundle"]), "ID"]

    def measure(self, context):
        self.serial += 1
        container_id = f"pyvmm-bench-{os.getpid()}-{self.serial}"
        try:
            process = run_process(self.command[:-1] + [container_id], None, context["spawner"], TIMEOUT)
        finally:
            subprocess.run([self.path, "--root", self.root, "delete", "--force", container_id],
                           capture_output=True, timeout=60)
        self.check(process, 0, self.name)
        return process.seconds, process.maxrss_kib if context["spawner"] else None



class Podman(Row):
    """`podman --runtime RUNTIME run --rm IMAGE /bin/hello`. Not counted as a VM row, even in VM
    mode: the "x fastest VM" yardstick is a VM started directly, without podman around it."""
    kind = "process"
    vm = False
    rss_measure = "peak RSS of the launched process tree (wait4 ru_maxrss: podman itself, its largest process)"
    command = None

    def __init__(self, check, name, label, runtime, vm_mode=False):
        self.check, self.name, self.label, self.runtime, self.vm_mode = check, name, label, runtime, vm_mode
        self.image = None

    def prepare(self, context):
        runtime = which("runc") if self.runtime == "runc" else runtime_script(self.runtime)
        if self.vm_mode:
            from ..oci.vm import unavailable_reason
            reason = unavailable_reason()
            if reason:
                raise Unavailable(reason)
        self.image = context.setdefault("podman_image", _Image(context["rootfs"], context["bundle"]))
        podman = self.image.acquire()
        self.command = [podman, "--runtime", runtime, "run", "--rm", *ULIMITS, IMAGE, "/bin/hello"]

    def measure(self, context):
        process = run_process(self.command, None, context["spawner"], TIMEOUT)
        self.check(process, 0, self.name)
        return process.seconds, process.maxrss_kib if context["spawner"] else None

    def close(self):
        if self.image is not None:
            self.image.release()
            self.image = None


def rows(check) -> list:
    """The rows; check(process, status, name) is startup.py's output check (hello's line)."""
    return [
        VmmOci(check),
        Podman(check, "podman-runc", "podman run --runtime runc", "runc"),
        Podman(check, "podman-vmm-oci", "podman run --runtime vmm-oci (namespaces)", "vmm-oci"),
        Podman(check, "podman-vmm-oci-vm", "podman run --runtime vmm-oci-vm (microVM)", "vmm-oci-vm", vm_mode=True),
    ]
