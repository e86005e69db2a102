"""The container's root file system: checking one, entering it, building a minimal one.

Entering (in the child, inside its new mount and PID namespaces):
1. make every mount private (MS_REC|MS_PRIVATE on /), so nothing below propagates to the host;
2. bind-mount ROOTFS on itself, so it is a mount point as pivot_root(2) requires;
3. pivot_root(".", ".") from inside ROOTFS, then umount2(".", MNT_DETACH): the old root is
   stacked on the new one and detached at once. This is the pivot_root(2) man page's form (runc
   uses it too): no put_old directory is created in ROOTFS, so a read-only ROOTFS works and a
   launcher killed half-way leaves no directory behind;
4. mount a fresh proc on /proc (the directory is made if ROOTFS lacks it, as runc makes missing
   mount points): being PID 1 of the new PID namespace, it shows only the container's processes.
pivot_root fails with EINVAL when the current root cannot be pivoted away: the initramfs
"rootfs" (a launcher running from an initramfs, as in a minimal VM) or a root that is not a mount
point. Then chroot(2) is used instead, which is weaker: the host's tree stays mounted in the
container's mount namespace, and a root process can climb out of a chroot.
The host needs no unmounting afterwards: all these mounts live in the container's mount
namespace and go away with its last process.
"""
import errno
import os
import stat
import struct
from pathlib import Path

from .. import paths
from ..errors import ImageError, InputError
from ..host import container_calls as libc
from . import paths_in_root

BIN_DIR = "bin"
SKELETON = ("bin", "dev", "etc", "proc", "tmp")
PT_INTERP = 3


def check_rootfs(rootfs) -> str:
    """The absolute, symlink-free path of ROOTFS, or InputError if it is not a directory."""
    path = os.path.realpath(os.fspath(rootfs))
    if not os.path.exists(path):
        raise InputError(f"root file system {rootfs}: no such directory")
    if not os.path.isdir(path):
        raise InputError(f"root file system {rootfs}: not a directory")
    return path


def enter_rootfs(rootfs: str) -> None:
    """Make ROOTFS this process's root, with a fresh /proc (steps in the module docstring)."""
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    libc.mount(rootfs, rootfs, None, libc.MS_BIND | libc.MS_REC)
    paths_in_root.mkdir_all(rootfs, "/proc")       # a missing mount point is made, as runc does
    os.chdir(rootfs)
    try:
        libc.pivot_root(".", ".")
        libc.umount2(".", libc.MNT_DETACH)
    except OSError as error:
        if error.errno != errno.EINVAL:      # this root cannot be pivoted away (docstring)
            raise
        os.chroot(".")
    os.chdir("/")
    libc.mount("proc", "/proc", "proc", libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)


def elf_interpreter(path) -> str | None:
    """The ELF program interpreter (PT_INTERP) of a 64-bit little-endian ELF, or None."""
    with open(path, "rb") as file:
        header = file.read(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        file.seek(phoff)
        table = file.read(phentsize * phnum)
        for index in range(phnum):
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", table, index * phentsize)
            if p_type == PT_INTERP:
                file.seek(p_offset)
                return file.read(p_filesz).rstrip(b"\0").decode(errors="replace")
    return None


def _source_and_name(spec) -> tuple[Path, str]:
    """'PATH', a built guest program's name, or 'NAME=PATH' (installed as /bin/NAME)."""
    text = os.fspath(spec)
    name, sep, source = text.partition("=")
    if sep and name and "/" not in name:
        path = paths.program_path(source)
    else:
        path = paths.program_path(text)
        name = path.name
    if not path.is_file():
        raise InputError(f"program {text}: no such file ({path})")
    return path, name


def build_rootfs(directory, programs) -> Path:
    """Make DIRECTORY a minimal root file system holding PROGRAMS (static) in /bin.

    Each program is a path, the name of a built guest program, or NAME=PATH to install PATH
    as /bin/NAME (for example true=/bin/busybox). Creates /bin, /dev, /etc, /proc, /tmp and,
    when run as root, /dev/null. Existing files are overwritten. Returns the absolute path.
    """
    import shutil
    root = Path(directory).resolve()
    installs = [_source_and_name(spec) for spec in programs]
    for source, _ in installs:
        interpreter = elf_interpreter(source)
        if interpreter:
            raise ImageError(f"program {source} is dynamically linked (needs {interpreter}); "
                             "a container root file system here holds static programs only")
    for name in SKELETON:
        (root / name).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "tmp", 0o1777)
    for source, name in installs:
        target = root / BIN_DIR / name
        if target.exists() or target.is_symlink():
            target.unlink()
        shutil.copyfile(source, target)     # shutil is imported here: it costs start-up time
        os.chmod(target, 0o755)
    null = root / "dev" / "null"
    if not null.exists() and os.geteuid() == 0:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chmod(null, 0o666)
    return root
