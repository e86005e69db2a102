"""The container's root file system: checking one, entering it, building a minimal one.

Entering (in the child, inside its new mount and PID namespaces):
1. make every mount private (MS_REC|MS_PRIVATE on /), so nothing below propagates to the host;
2. bind-mount ROOTFS on itself, so it is a mount point as pivot_root(2) requires;
3. create the mount points /proc, /dev and /sys in ROOTFS where they are missing, as runc does
   (MkdirAllInRoot: the image directory gains empty directories; a read-only one that lacks them
   cannot be used), and mount a tmpfs on /dev with runc's default device nodes (null, zero,
   full, random, urandom, tty) and links (fd, stdin, stdout, stderr), hiding the image's /dev;
4. pivot_root(".", ".") from inside ROOTFS, then umount2(".", MNT_DETACH): the old root is
   stacked on the new one and detached at once. This is the pivot_root(2) man page's form (runc
   uses it too): no put_old directory is created in ROOTFS, so a read-only ROOTFS works and a
   launcher killed half-way leaves no directory behind;
5. mount a fresh proc on /proc: being PID 1 of the new PID namespace, it shows only the
   container's processes; and sysfs, read-only, on /sys (runc's default mounts).
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
from ..errors import ImageError, InputError, UsageError
from ..host import container_calls as libc
from ..host.beneath import open_beneath
from ..user_files import InputFile
from . import paths_in_root

BIN_DIR = "bin"
SKELETON = ("bin", "dev", "etc", "proc", "tmp")
PT_INTERP = 3
MOUNT_POINTS = ("proc", "dev", "sys")
# runc's default devices (libcontainer/specconv: AllowedDevices) and /dev links.
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))
DEV_LINKS = (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
             ("stderr", "/proc/self/fd/2"))
DEV_TMPFS_OPTIONS = "mode=755,size=65536k"
PHDR64_SIZE = 56
PATH_MAX = 4096
# The host's own tree (the Filesystem Hierarchy Standard's folders): never a root file system.
SYSTEM_FOLDERS = frozenset(["/"] + [f"/{name}" for name in (
    "bin boot dev etc home lib lib32 lib64 libx32 media mnt opt proc root run sbin srv sys tmp usr var").split()]
    + [f"/usr/{name}" for name in "bin include lib lib32 lib64 libexec local sbin share src".split()]
    + [f"/var/{name}" for name in "cache lib local lock log mail opt run spool tmp".split()])
KERNEL_FILE_SYSTEMS = ("/proc", "/sys", "/dev")


def refuse_host_tree(path: str, given) -> None:
    """UsageError if `path` (absolute, resolved) is one of the host's own system folders, or
    inside a kernel file system: never a container's root, never written into."""
    if path in SYSTEM_FOLDERS:
        raise UsageError(f"{given} is the host's own {path}: a root file system needs a folder of its own "
                         "(make one with `vmm container rootfs DIR PROGRAM...`)")
    for top in KERNEL_FILE_SYSTEMS:
        if path == top or path.startswith(top + "/"):
            raise UsageError(f"{given} is inside the kernel's {top} file system: not a place for a root file system")


def check_rootfs(rootfs) -> str:
    """The absolute, symlink-free path of ROOTFS, or InputError if it is not a directory
    (UsageError for the host's own folders)."""
    path = os.path.realpath(os.fspath(rootfs))
    refuse_host_tree(path, rootfs)
    if not os.path.exists(path):
        raise InputError(f"root file system {rootfs}: no such directory")
    if not os.path.isdir(path):
        raise InputError(f"root file system {rootfs}: not a directory")
    for name in MOUNT_POINTS:
        point = os.path.join(path, name)
        if os.path.lexists(point) and not os.path.isdir(point):
            raise InputError(f"root file system {rootfs}: /{name} is not a directory, so nothing can be "
                             "mounted there")
    return path


def make_mount_points(rootfs: str) -> None:
    """The missing mount points, made in ROOTFS as runc makes them (symbolic links resolved
    inside ROOTFS, never out of it)."""
    for name in MOUNT_POINTS:
        try:
            paths_in_root.mkdir_all(rootfs, "/" + name)
        except OSError as error:
            raise InputError(f"cannot create the mount point /{name} in the root file system {rootfs}: "
                             f"{error.strerror}") from None


def mount_dev(dev: str) -> None:
    """A tmpfs on dev with runc's default device nodes and links."""
    libc.mount("tmpfs", dev, "tmpfs", libc.MS_NOSUID, DEV_TMPFS_OPTIONS)
    for name, major, minor in DEVICES:
        os.mknod(os.path.join(dev, name), stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(os.path.join(dev, name), 0o666)        # the umask must not narrow them
    for name, target in DEV_LINKS:
        os.symlink(target, os.path.join(dev, name))
    for name in ("pts", "shm"):
        os.mkdir(os.path.join(dev, name), 0o755)


def enter_rootfs(rootfs: str) -> None:
    """Make ROOTFS this process's root, with a fresh /proc (steps in the module docstring)."""
    libc.mount(None, "/", None, libc.MS_REC | libc.MS_PRIVATE)
    libc.mount(rootfs, rootfs, None, libc.MS_BIND | libc.MS_REC)
    make_mount_points(rootfs)
    mount_dev(paths_in_root.resolve(rootfs, "/dev"))
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
    libc.mount("sysfs", "/sys", "sysfs", libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)


def elf_interpreter(path) -> str | None:
    """The ELF program interpreter (PT_INTERP) of a 64-bit little-endian ELF, or None (also
    for a file that is not one, or is truncated: the container's execve will say so)."""
    with InputFile(path, "program") as file:
        header = file.head(64)
        if len(header) < 64 or header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        if phentsize < PHDR64_SIZE:
            return None
        for index in range(phnum):
            entry = file.read_at(phoff + index * phentsize, PHDR64_SIZE)
            if len(entry) < PHDR64_SIZE:
                return None
            p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", entry)
            if p_type == PT_INTERP:
                return file.read_at(p_offset, min(p_filesz, PATH_MAX)).rstrip(b"\0").decode(errors="replace")
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
    if name in ("", ".", ".."):
        raise UsageError(f"program {text!r}: {name!r} is not a file name for /bin")
    if not path.exists():
        raise InputError(f"program {text}: no such file ({path})")
    return path, name


def build_rootfs(directory, programs) -> Path:
    """Make DIRECTORY a minimal root file system holding PROGRAMS (static) in /bin.

    Each program is a path, the name of a built guest program, or NAME=PATH to install PATH
    as /bin/NAME (for example true=/bin/busybox). Creates /bin, /dev, /etc, /proc, /tmp and,
    when run as root, /dev/null. Existing files in /bin are replaced. Returns the absolute path.

    Nothing outside DIRECTORY is ever written: every path inside it is opened beneath it
    (host/beneath.py), so a symbolic link that leads out (`bin -> /usr/bin`, `tmp -> /`) is
    an InputError, while one that stays inside (`bin -> usr/bin`) is followed. The host's own
    system folders are refused (UsageError).
    """
    root = os.path.realpath(os.fspath(directory))
    refuse_host_tree(root, directory)
    installs = [_source_and_name(spec) for spec in programs]
    for source, _ in installs:
        interpreter = elf_interpreter(source)
        if interpreter:
            raise ImageError(f"program {source} is dynamically linked (needs {interpreter}); "
                             "a container root file system here holds static programs only")
    root_fd = _make_root(root, directory)
    folders = {}
    try:
        for name in SKELETON:
            folders[name] = _folder_beneath(root_fd, name, directory)
        os.fchmod(folders["tmp"], 0o1777)
        for source, name in installs:
            _install(source, folders[BIN_DIR], name, directory)
        if os.geteuid() == 0:
            _make_null(folders["dev"])
    except OSError as error:
        raise InputError(f"cannot build root file system {directory}: {error.strerror}"
                         + (f" ({error.filename})" if error.filename else "")) from None
    finally:
        for fd in [root_fd, *folders.values()]:
            os.close(fd)
    return Path(root)


def _make_root(root: str, given) -> int:
    """A descriptor of the root folder, created if needed."""
    try:
        os.makedirs(root, exist_ok=True)
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except (FileExistsError, NotADirectoryError):
        raise InputError(f"root file system {given}: not a directory") from None
    except OSError as error:
        raise InputError(f"cannot create root file system {given}: {error.strerror}") from None


def _folder_beneath(root_fd: int, name: str, given) -> int:
    """DIR/name, created if missing, as a descriptor: never a folder outside DIR."""
    try:
        os.mkdir(name, 0o755, dir_fd=root_fd)       # (mkdirat never follows a link at `name`)
    except FileExistsError:
        pass
    try:
        return open_beneath(root_fd, name, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        if error.errno in (errno.EXDEV, errno.ELOOP):
            raise InputError(f"{given}/{name} is a symbolic link that leads out of {given}: refusing to "
                             f"follow it (nothing outside {given} was written)") from None
        if error.errno == errno.ENOTDIR:
            raise InputError(f"{given}/{name} exists and is not a directory") from None
        raise


def _install(source: Path, bin_fd: int, name: str, given) -> None:
    """Copy `source` to bin/name as a new file (a link or file there is replaced, not followed)."""
    with InputFile(source, "program") as program:
        try:
            os.unlink(name, dir_fd=bin_fd)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            raise InputError(f"{given}/{BIN_DIR}/{name} is a directory") from None
        target = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o755,
                         dir_fd=bin_fd)
        try:
            done = 0
            while done < program.size:
                sent = os.sendfile(target, program.fd, done, program.size - done)
                if sent == 0:
                    break
                done += sent
            os.fchmod(target, 0o755)
        finally:
            os.close(target)


def _make_null(dev_fd: int) -> None:
    """dev/null as the host's (1, 3), if nothing is there yet."""
    try:
        os.mknod("null", stat.S_IFCHR | 0o666, os.makedev(1, 3), dir_fd=dev_fd)
    except FileExistsError:
        return
    node = os.open("null", os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dev_fd)
    try:
        os.fchmod(node, 0o666)              # (mknod's mode went through the umask)
    finally:
        os.close(node)
