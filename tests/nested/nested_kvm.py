#!/usr/bin/env python3
"""Run this checkout's tests (or any command) on a KVM with hardware-virtualisation semantics:
kvm_amd inside a QEMU TCG guest that emulates AMD SVM with nested paging.

    nested_kvm.py image                 # build (cached) build/nested/: Debian's kernel, an initramfs
    nested_kvm.py pytest [ARGS...]      # `pytest -m kvm ARGS` in one guest boot
    nested_kvm.py run [--] CMD...       # any command, in the checkout, inside the guest

The guest is Debian's generic kernel (`linux-image-amd64`, fetched with `apt-get download` and
unpacked, never installed) and a busybox initramfs whose /init (tests/nested/init) loads
kvm_amd and 9p, mounts the host's root file system read-only over 9p (so this checkout, its
.venv and the host's Python run unchanged), puts a tmpfs on /tmp, and runs the command in the
checkout. Results come back through a second, writable 9p export (build/nested/results:
the command's status, its output, pytest's junit XML); the console streams to the terminal
and to build/nested/console.log.

Standard library only, and no import of the vmm package: this is the test bench, not the VMM.

Exit status: the command's (pytest's: 0 all passed, 1 some failed, 5 none collected...);
69 the nested environment is broken or missing (QEMU, busybox-static, the kernel package, SVM
in TCG, a module that fails to load, /dev/kvm, the 9p mounts), with one line saying which;
72 the guest did not finish within --timeout; 64 bad arguments.
"""
import argparse
import base64
import os
import re
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHECKOUT = HERE.parent.parent
BUILD = CHECKOUT / "build" / "nested"
KERNEL_DIR = BUILD / "kernel"            # vmlinuz, modules/*.ko, release: the cached unpacked kernel
INITRAMFS = BUILD / "initramfs.cpio"
RESULTS = BUILD / "results"              # the writable 9p export
CONSOLE_LOG = BUILD / "console.log"
QEMU_LOG = BUILD / "qemu.log"            # QEMU's own stderr
INIT_SCRIPT = HERE / "init"

KERNEL_META_PACKAGE = "linux-image-amd64"   # Debian's generic kernel: has kvm-amd.ko, 9p, virtio
BUSYBOX = Path("/bin/busybox")               # busybox-static's (a dynamic one cannot run in the initramfs)
QEMU = "qemu-system-x86_64"
# What the guest needs, in the order /init loads them after their dependencies (found from
# each module's .modinfo "depends=", as depmod would): the 9p root over virtio-pci, then KVM.
# kvm-amd needs ccp (the AMD Secure Processor driver: SEV), kvm needs irqbypass.
WANTED_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "kvm_amd")

CPU_MODEL = "max"           # QEMU's TCG with everything it emulates: SVM, NPT (no NRIPS in 7.2)
GUEST_MEMORY = "2G"         # Python, pytest, a VM or two of 64-256 MiB each, a tmpfs /tmp
DEFAULT_TIMEOUT = 1800      # seconds: a hung guest fails the run instead of hanging CI
EXIT_FAILED = 1
EXIT_USAGE = 64
EXIT_UNAVAILABLE = 69
EXIT_TIMEOUT = 72
ERROR_PREFIX = "NESTED-ERROR: "          # /init's one-line report of a broken environment
RUNNING_PREFIX = "nested: running in "    # /init's last line before the command's output
KERNEL_LINE = re.compile(r"^\[\s*\d+\.\d+\] ")   # a kernel message ("[    5.40] reboot: Power down")
PYTEST_MARKER = "kvm"                    # the selection: tests that drive the KVM engine


class Unavailable(Exception):
    """The nested environment cannot be built or booted here; the message is the one line."""


# --- the kernel ----------------------------------------------------------------------------------------
def kernel_package() -> str:
    """The versioned package linux-image-amd64 depends on (e.g. linux-image-6.1.0-57-amd64):
    whatever the configured Debian mirror has now, nothing pinned. The package lists are
    fetched first if this machine has none yet."""
    for attempt in range(2):
        if attempt:
            subprocess.run(["apt-get", "update", "-qq"])
        found = subprocess.run(["apt-cache", "depends", KERNEL_META_PACKAGE], capture_output=True, text=True)
        for line in found.stdout.splitlines():
            name = line.strip().removeprefix("Depends:").strip()
            if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
                return name
    raise Unavailable(f"the package lists know no {KERNEL_META_PACKAGE} (is this Debian, with a mirror?)")


def fetch_kernel() -> None:
    """Download the kernel package and keep vmlinuz and the modules the guest needs (about
    8 MB) in KERNEL_DIR; the .deb and the rest (400 MB unpacked) are deleted afterwards."""
    package = kernel_package()
    download = BUILD / "download"
    shutil.rmtree(download, ignore_errors=True)
    download.mkdir(parents=True)
    try:
        print(f"nested: downloading {package} (apt-get download, not installed)", flush=True)
        # (As root into a folder _apt cannot write: download as root, without the warning.)
        download_command = ["apt-get", "download", "-q", "-o", "APT::Sandbox::User=root", package]
        if subprocess.run(download_command, cwd=download).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"])
            _run(download_command, "apt-get download", cwd=download)
        debs = list(download.glob("*.deb"))
        if len(debs) != 1:
            raise Unavailable(f"apt-get download {package} gave {len(debs)} packages")
        tree = download / "tree"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)], "dpkg-deb -x")
        vmlinuz = sorted((tree / "boot").glob("vmlinuz-*"))
        module_roots = sorted((tree / "lib" / "modules").glob("*/kernel"))
        if len(vmlinuz) != 1 or len(module_roots) != 1:
            raise Unavailable(f"{package} does not hold one vmlinuz and one module tree")
        release = module_roots[0].parent.name
        order = module_order(index_modules(module_roots[0]), WANTED_MODULES)
        staging = BUILD / "kernel.new"
        shutil.rmtree(staging, ignore_errors=True)
        (staging / "modules").mkdir(parents=True)
        shutil.copy2(vmlinuz[0], staging / "vmlinuz")
        for name, path in order:
            shutil.copy2(path, staging / "modules" / f"{name}.ko")
        (staging / "modules" / "order").write_text("".join(name + "\n" for name, _ in order))
        (staging / "release").write_text(f"{package} {release}\n")
        shutil.rmtree(KERNEL_DIR, ignore_errors=True)
        staging.rename(KERNEL_DIR)
    finally:
        shutil.rmtree(download, ignore_errors=True)


def index_modules(root: Path) -> dict:
    """{module name: path} for every .ko under root (names with '_', as the kernel uses them)."""
    return {path.name[:-3].replace("-", "_"): path for path in root.rglob("*.ko")}


def module_order(index: dict, wanted) -> list:
    """[(name, path)] of `wanted` and everything they depend on, dependencies first."""
    order, seen = [], set()

    def visit(name, chain):
        if name in seen:
            return
        if name not in index:
            raise Unavailable(f"module {name} (needed by {' <- '.join(chain) or 'the guest'}) is not in the kernel package")
        seen.add(name)
        for dependency in modinfo(index[name].read_bytes()).get("depends", "").split(","):
            if dependency:
                visit(dependency.replace("-", "_"), [name] + chain)
        order.append((name, index[name]))

    for name in wanted:
        visit(name, [])
    return order


def modinfo(ko: bytes) -> dict:
    """The key=value strings of a kernel module's .modinfo section (ELF64 little-endian)."""
    if ko[:4] != b"\x7fELF" or ko[4] != 2 or ko[5] != 1:
        raise Unavailable("a kernel module is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", ko, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", ko, 0x3A)

    def section(i):
        name, _, _, _, offset, size = struct.unpack_from("<IIQQQQ", ko, shoff + i * shentsize)
        return name, ko[offset:offset + size]

    _, names = section(shstrndx)
    for i in range(shnum):
        name, data = section(i)
        if names[name:names.index(b"\0", name)] == b".modinfo":
            pairs = (item.split(b"=", 1) for item in data.split(b"\0") if b"=" in item)
            return {key.decode(): value.decode(errors="replace") for key, value in pairs}
    return {}


# --- the initramfs -----------------------------------------------------------------------------------
def cpio_newc(entries) -> bytes:
    """An uncompressed initramfs: (path, mode, data or symlink target) in the "newc" format
    (the kernel's Documentation/driver-api/early-userspace/buffer-format.rst)."""
    out = bytearray()

    def add(path, mode, data, ino):
        name = path.encode() + b"\0"
        header = "070701" + "".join(f"{v:08x}" for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0,
                                                          len(name), 0))
        out.extend(header.encode() + name)
        out.extend(b"\0" * (-len(out) % 4))
        out.extend(data)
        out.extend(b"\0" * (-len(out) % 4))

    for ino, (path, mode, data) in enumerate(entries, start=1):
        add(path, mode, data, ino)
    add("TRAILER!!!", 0, b"", 0)
    return bytes(out)


def is_static_elf(path: Path) -> bool:
    """True for an ELF with no program interpreter (PT_INTERP), i.e. statically linked."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2:
        return False
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


def build_initramfs() -> None:
    if not BUSYBOX.exists() or not is_static_elf(BUSYBOX):
        raise Unavailable(f"{BUSYBOX} is not a static busybox (apt-get install busybox-static)")
    directory, executable, regular = 0o040755, 0o100755, 0o100644
    entries = [(d, directory, b"") for d in ("bin", "dev", "proc", "sys", "mnt", "lib", "lib/modules")]
    entries += [("bin/busybox", executable, BUSYBOX.read_bytes()),
                ("bin/sh", 0o120777, b"busybox"),
                ("init", executable, INIT_SCRIPT.read_bytes())]
    for ko in sorted((KERNEL_DIR / "modules").iterdir()):
        entries.append((f"lib/modules/{ko.name}", regular, ko.read_bytes()))
    INITRAMFS.write_bytes(cpio_newc(entries))


def build_image() -> None:
    """Kernel (downloaded once, then cached) and initramfs (rebuilt each time: 0.1 s)."""
    BUILD.mkdir(parents=True, exist_ok=True)
    if not (KERNEL_DIR / "vmlinuz").exists() or not (KERNEL_DIR / "modules" / "order").exists():
        fetch_kernel()
    build_initramfs()


# --- running the guest ----------------------------------------------------------------------------------
def kernel_command_line(command: str, timeout: float = DEFAULT_TIMEOUT) -> str:
    """The guest kernel's command line; the checkout and the command travel base64-encoded
    (one word each; /init reads them from /proc/cmdline). /init kills the command itself a
    minute after `timeout`, should this process die without stopping QEMU."""
    encode = lambda text: base64.b64encode(text.encode()).decode()
    # idle=poll: the guest never halts. Halted, QEMU 7.2's TCG sometimes never woke it again
    # (measured: 4 of 6 full runs froze, QEMU at 0% CPU, the guest's own timers stopped).
    # nohz=off highres=off: a periodic local-APIC tick, which QEMU re-arms by itself. With
    # one-shot ticks the guest still froze at times while running a nested VM, its last tick
    # fired and never handled, and no timer armed in QEMU (its main loop slept for 8.8 hours).
    line = (f"console=ttyS0 quiet loglevel=3 panic=-1 idle=poll nohz=off highres=off "
            f"nested.dir={encode(str(CHECKOUT))} "
            f"nested.cmd={encode(command)} nested.limit={int(timeout) + 60}")
    if len(line) >= 2048:                       # COMMAND_LINE_SIZE on x86
        raise ValueError("the command is too long for the guest's kernel command line")
    return line


def qemu_command(qemu: str, command: str, cpus: int, timeout: float) -> list:
    share = "local,security_model=none,multidevs=remap"
    return [qemu, "-accel", "tcg", "-cpu", CPU_MODEL, "-smp", str(cpus), "-m", GUEST_MEMORY,
            "-nodefaults", "-no-user-config", "-nographic", "-no-reboot", "-serial", "stdio",
            "-fw_cfg", "name=etc/sercon-port,string=0",     # SeaBIOS: nothing on the serial console
            "-kernel", str(KERNEL_DIR / "vmlinuz"), "-initrd", str(INITRAMFS),
            "-append", kernel_command_line(command, timeout),
            "-virtfs", f"{share},path=/,mount_tag=hostroot,readonly=on",
            "-virtfs", f"{share},path={RESULTS},mount_tag=results"]


def boot(command: str, timeout: float, cpus: int, quiet: bool = False) -> int:
    """Run `command` (a shell command line, in the checkout) in the guest; stream the console
    (with `quiet`, only the command's own lines). Returns the command's exit status."""
    qemu = shutil.which(QEMU)
    if qemu is None:
        raise Unavailable(f"{QEMU} is not installed (make peers, or apt-get install qemu-system-x86)")
    shutil.rmtree(RESULTS, ignore_errors=True)
    RESULTS.mkdir(parents=True)
    started = time.monotonic()
    error = None
    with open(CONSOLE_LOG, "wb", buffering=0) as log, open(QEMU_LOG, "wb") as qemu_log:
        process = subprocess.Popen(qemu_command(qemu, command, cpus, timeout), stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=qemu_log, start_new_session=True)
        try:
            error = _stream(process, log, started + timeout, quiet)
        finally:
            _stop(process)
    if error == "timeout":
        print(f"nested: the guest did not finish within {timeout:.0f} s (console: {CONSOLE_LOG})",
              file=sys.stderr)
        return EXIT_TIMEOUT
    if error:
        raise Unavailable(error)
    status_file = RESULTS / "status"
    if not status_file.exists():
        complaint = _last_line(QEMU_LOG)
        raise Unavailable(f"the guest stopped without a result (QEMU exit status {process.returncode}"
                          + (f": {complaint}" if complaint else "") + f"; console: {CONSOLE_LOG})")
    if not quiet:
        print(f"nested: guest run took {time.monotonic() - started:.0f} s", flush=True)
    return int(status_file.read_text().strip() or EXIT_FAILED)


def _stream(process, log, deadline, quiet: bool) -> str | None:
    """Copy the console to stdout and the log until QEMU exits; the first NESTED-ERROR line,
    "timeout", or None. Quiet: only whole lines after /init's "running" line, no kernel ones."""
    import selectors
    error = None
    pending = b""
    echo = not quiet
    out = sys.stdout.buffer
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout"
            if not selector.select(min(remaining, 1.0)):
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:
                break
            log.write(chunk)
            if not quiet:
                out.write(chunk)
                out.flush()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                text = line.decode(errors="replace").strip()
                if error is None and text.startswith(ERROR_PREFIX):
                    error = text[len(ERROR_PREFIX):]
                if quiet and echo and not KERNEL_LINE.match(text):
                    out.write(line + b"\n")
                    out.flush()
                echo = echo or text.startswith(RUNNING_PREFIX)
    process.wait()
    return error


def _stop(process) -> None:
    """QEMU (its own process group) ends on every path: Ctrl-C, timeout, an exception."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    process.stdout.close()


def _lock_build_folder():
    """One run at a time per checkout (they share build/nested); the lock dies with us."""
    BUILD.mkdir(parents=True, exist_ok=True)
    handle = open(BUILD / "lock", "w")
    try:                        # a POSIX record lock through os (the project never imports fcntl)
        os.lockf(handle.fileno(), os.F_TLOCK, 0)
    except (BlockingIOError, PermissionError):
        handle.close()
        raise Unavailable(f"another nested run is using {BUILD}") from None
    return handle


def _last_line(path: Path) -> str:
    """The last line of QEMU's stderr that is not its warning about our fw_cfg name."""
    lines = [line for line in path.read_text(errors="replace").splitlines()
             if line.strip() and "fw_cfg item names" not in line] if path.exists() else []
    return lines[-1].strip() if lines else ""


def _terminate(signum, frame):
    """SIGTERM/SIGHUP (a CI timeout, a closed terminal) unwind like Ctrl-C: QEMU is stopped."""
    raise KeyboardInterrupt


def pytest_command(args) -> str:
    """The selection in the guest: every test marked `kvm`, junit XML and the summary kept in
    the results export; no cache or bytecode written into the read-only checkout."""
    python = shlex.quote(str(CHECKOUT / ".venv" / "bin" / "python"))
    return (f"{python} -m pytest -p no:cacheprovider -m {PYTEST_MARKER} -q "
            f"--junitxml=/run/nested/junit.xml " + " ".join(shlex.quote(a) for a in args))


def summary_line(output: str) -> str | None:
    """pytest's last line ("12 passed, 3 skipped in 40.1s"), if it printed one."""
    for line in reversed(output.splitlines()):
        text = line.strip().strip("=").strip()
        if " in " in text and any(word in text for word in ("passed", "failed", "error", "skipped",
                                                              "deselected", "no tests ran")):
            return text
    return None


def _run(argv, what, cwd=None) -> str:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise Unavailable(f"{argv[0]} is not installed (needed for {what})") from None
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"status {proc.returncode}"])[-1]
        raise Unavailable(f"{what} failed: {last}")
    return proc.stdout


COMMANDS = ("image", "pytest", "run")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     usage="%(prog)s [--timeout S] [--cpus N] [--quiet] {image | pytest [ARGS] | run [--] CMD...}")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("NESTED_TIMEOUT", DEFAULT_TIMEOUT)),
                        help=f"seconds before the guest is declared hung (default {DEFAULT_TIMEOUT}, or $NESTED_TIMEOUT)")
    parser.add_argument("--cpus", type=int, default=1, help="guest vCPUs (default 1)")
    parser.add_argument("--quiet", action="store_true", help="show only the command's output, not the boot")
    parser.add_argument("what", choices=COMMANDS)
    # Everything after the command goes to it unparsed (pytest's own options included).
    split = next((i for i, arg in enumerate(argv) if arg in COMMANDS), len(argv))
    try:
        args = parser.parse_args(argv[:split + 1])
    except SystemExit as exit:
        return EXIT_USAGE if exit.code else 0
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)
    rest = argv[split + 1:]
    if args.what == "run" and rest[:1] == ["--"]:
        rest = rest[1:]
    if args.what == "image" and rest or args.what == "run" and not rest:
        print(f"nested: {'image takes no arguments' if rest else 'run needs a command'}", file=sys.stderr)
        return EXIT_USAGE
    try:
        lock = _lock_build_folder()         # held until we return
        build_image()
        if args.what == "image":
            print(f"nested: {KERNEL_DIR / 'vmlinuz'} ({(KERNEL_DIR / 'release').read_text().strip()}), {INITRAMFS}")
            return 0
        if args.what == "run":
            return boot(" ".join(shlex.quote(a) for a in rest), args.timeout, args.cpus, args.quiet)
        status = boot(pytest_command(rest), args.timeout, args.cpus, args.quiet)
        if status == EXIT_TIMEOUT:
            return status
        output = (RESULTS / "output").read_text(errors="replace") if (RESULTS / "output").exists() else ""
        summary = summary_line(output) or f"pytest printed no summary (status {status})"
        print(f"nested kvm_amd: {summary}")
        return status
    except Unavailable as error:
        print(f"nested: {error}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        print("nested: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
