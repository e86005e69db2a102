#!/usr/bin/env python3
"""Build the test initramfs (a gzip'd "newc" cpio, as the kernel's initramfs format wants it;
Documentation/driver-api/early-userspace/buffer-format.rst) from unpacked Debian packages:

    /bin/busybox and a link per applet, /init, /scripts/*, /dev/console,
    /lib/modules/NAME.ko for the virtio modules of the same kernel package.

Written in Python so that the build needs no cpio tool, and so that the archive holds device
nodes and root-owned files without running as root.
"""
import argparse
import gzip
import os
import stat
import subprocess
import sys
from pathlib import Path

# Loaded in this order by /init (each needs the ones before it).
MODULES = ("virtio_ring", "virtio", "virtio_mmio", "virtio_blk", "virtio-rng", "virtio_console")
DIRECTORIES = ("bin", "dev", "lib", "lib/modules", "mnt", "proc", "scripts", "sys", "tmp")
CONSOLE_MAJOR, CONSOLE_MINOR = 5, 1          # /dev/console (Documentation/admin-guide/devices.txt)
TRAILER = "TRAILER!!!"


class Cpio:
    """A newc archive: a 110-byte ASCII header per entry, name and data padded to 4 bytes."""

    def __init__(self):
        self.parts = []
        self.inode = 1

    def add(self, name: str, mode: int, data: bytes = b"", rdev=(0, 0)) -> None:
        name_bytes = name.encode() + b"\0"
        fields = (self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name_bytes), 0)
        self.inode += 1
        header = b"070701" + b"".join(b"%08X" % value for value in fields)
        self.parts += [header, name_bytes, bytes(-(len(header) + len(name_bytes)) % 4),
                       data, bytes(-len(data) % 4)]

    def directory(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, executable: bool = False) -> None:
        self.add(name, stat.S_IFREG | (0o755 if executable else 0o644), data)

    def symlink(self, name: str, target: str) -> None:
        self.add(name, stat.S_IFLNK | 0o777, target.encode())

    def finish(self) -> bytes:
        self.add(TRAILER, 0)
        return b"".join(self.parts)


def find_module(root: Path, name: str) -> Path:
    found = sorted(root.glob(f"lib/modules/*/kernel/**/{name}.ko"))
    if not found:
        sys.exit(f"mkinitramfs: module {name}.ko is not in the kernel package under {root}")
    return found[0]


def busybox_applets(busybox: Path) -> list:
    """The applet names this busybox offers (`busybox --list`), run on the build host."""
    listing = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=True)
    return [name for name in listing.stdout.split() if name != "busybox"]


def build(root: Path, init: Path, scripts: Path) -> bytes:
    archive = Cpio()
    for directory in DIRECTORIES:
        archive.directory(directory)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(CONSOLE_MAJOR, CONSOLE_MINOR))
    busybox = root / "bin" / "busybox"
    archive.file("bin/busybox", busybox.read_bytes(), executable=True)
    for applet in busybox_applets(busybox):
        archive.symlink(f"bin/{applet}", "busybox")
    for name in MODULES:
        archive.file(f"lib/modules/{name}.ko", find_module(root, name).read_bytes())
    archive.file("init", init.read_bytes(), executable=True)
    for script in sorted(scripts.iterdir()):
        archive.file(f"scripts/{script.name}", script.read_bytes(), executable=True)
    return archive.finish()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the unpacked kernel and busybox-static packages")
    parser.add_argument("--init", type=Path, required=True)
    parser.add_argument("--scripts", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    data = gzip.compress(build(args.root, args.init, args.scripts), compresslevel=9, mtime=0)
    temporary = args.output.with_suffix(".tmp")
    temporary.write_bytes(data)
    os.replace(temporary, args.output)


if __name__ == "__main__":
    main()
