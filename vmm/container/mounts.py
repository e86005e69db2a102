"""The mounts of a container: option strings, one mount entry, masked and read-only paths, the root.

Option strings are runtime-spec's "Linux mount options" table, with runc's meanings
(libcontainer/specconv: mountFlags, mountPropagationMapping, recAttrFlags): a flag option sets or
clears an MS_* flag, a propagation option is applied by a separate mount(2) call after the mount,
an `r...` option (rro, rnosuid...) is applied to the whole tree with mount_setattr(2), and any
other string is file-system data (mode=755, size=65536k, gid=5...).

The order for one entry follows runc's mountToRootfs:
- the mount point is created inside the root file system when missing (a directory, or an empty
  file for a bind mount of a file), its path resolved inside the root (paths_in_root);
- a bind mount is made first and then remounted with its flags (MS_BIND ignores the others);
  when the remount is refused because the source mount has locked flags (nosuid, nodev, noexec,
  ro, set on the host), it is retried with those flags kept, as runc does;
- a read-only tmpfs is mounted writable and made read-only by finalize() after the device nodes
  are in (a read-only /dev is a tmpfs that must receive them first);
- `cgroup` on a cgroup v1 host is a tmpfs with each hierarchy's container directory bound under it.
"""
import os
from collections import namedtuple

from ..host import container_calls as libc
from . import paths_in_root

FLAGS = {   # name: (clears the flag, flag)
    "async": (True, libc.MS_SYNCHRONOUS), "atime": (True, libc.MS_NOATIME), "bind": (False, libc.MS_BIND),
    "defaults": (False, 0), "dev": (True, libc.MS_NODEV), "diratime": (True, libc.MS_NODIRATIME),
    "dirsync": (False, libc.MS_DIRSYNC), "exec": (True, libc.MS_NOEXEC), "iversion": (False, libc.MS_I_VERSION),
    "lazytime": (False, libc.MS_LAZYTIME), "loud": (True, libc.MS_SILENT), "mand": (False, libc.MS_MANDLOCK),
    "noatime": (False, libc.MS_NOATIME), "nodev": (False, libc.MS_NODEV), "nodiratime": (False, libc.MS_NODIRATIME),
    "noexec": (False, libc.MS_NOEXEC), "noiversion": (True, libc.MS_I_VERSION), "nolazytime": (True, libc.MS_LAZYTIME),
    "nomand": (True, libc.MS_MANDLOCK), "norelatime": (True, libc.MS_RELATIME),
    "nostrictatime": (True, libc.MS_STRICTATIME), "nosuid": (False, libc.MS_NOSUID),
    "nosymfollow": (False, libc.MS_NOSYMFOLLOW), "rbind": (False, libc.MS_BIND | libc.MS_REC),
    "relatime": (False, libc.MS_RELATIME), "remount": (False, libc.MS_REMOUNT), "ro": (False, libc.MS_RDONLY),
    "rw": (True, libc.MS_RDONLY), "silent": (False, libc.MS_SILENT), "strictatime": (False, libc.MS_STRICTATIME),
    "suid": (True, libc.MS_NOSUID), "sync": (False, libc.MS_SYNCHRONOUS), "symfollow": (True, libc.MS_NOSYMFOLLOW),
}
PROPAGATION = {
    "rprivate": libc.MS_PRIVATE | libc.MS_REC, "private": libc.MS_PRIVATE,
    "rslave": libc.MS_SLAVE | libc.MS_REC, "slave": libc.MS_SLAVE,
    "rshared": libc.MS_SHARED | libc.MS_REC, "shared": libc.MS_SHARED,
    "runbindable": libc.MS_UNBINDABLE | libc.MS_REC, "unbindable": libc.MS_UNBINDABLE,
}
RECURSIVE = {  # name: (clears the attribute, MOUNT_ATTR_*)
    "rro": (False, libc.MOUNT_ATTR_RDONLY), "rrw": (True, libc.MOUNT_ATTR_RDONLY),
    "rnosuid": (False, libc.MOUNT_ATTR_NOSUID), "rsuid": (True, libc.MOUNT_ATTR_NOSUID),
    "rnodev": (False, libc.MOUNT_ATTR_NODEV), "rdev": (True, libc.MOUNT_ATTR_NODEV),
    "rnoexec": (False, libc.MOUNT_ATTR_NOEXEC), "rexec": (True, libc.MOUNT_ATTR_NOEXEC),
    "rnodiratime": (False, libc.MOUNT_ATTR_NODIRATIME), "rdiratime": (True, libc.MOUNT_ATTR_NODIRATIME),
    "rnosymfollow": (False, libc.MOUNT_ATTR_NOSYMFOLLOW), "rsymfollow": (True, libc.MOUNT_ATTR_NOSYMFOLLOW),
    "rrelatime": (False, libc.MOUNT_ATTR_RELATIME), "rnorelatime": (True, libc.MOUNT_ATTR__ATIME),
    "rnoatime": (False, libc.MOUNT_ATTR_NOATIME), "ratime": (True, libc.MOUNT_ATTR__ATIME),
    "rstrictatime": (False, libc.MOUNT_ATTR_STRICTATIME), "rnostrictatime": (True, libc.MOUNT_ATTR__ATIME),
}
# Flags the kernel locks on a bind mount made from a mount that has them (mount_namespaces(7)).
LOCKED = libc.MS_RDONLY | libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
_STATVFS_TO_MS = ((os.ST_RDONLY, libc.MS_RDONLY), (os.ST_NOSUID, libc.MS_NOSUID), (os.ST_NODEV, libc.MS_NODEV),
                  (os.ST_NOEXEC, libc.MS_NOEXEC), (os.ST_NOATIME, libc.MS_NOATIME),
                  (os.ST_NODIRATIME, libc.MS_NODIRATIME), (os.ST_RELATIME, libc.MS_RELATIME))

# flags: MS_* to set; cleared: MS_* the options clear; propagation: [MS_*]; rec_set/rec_clr:
# MOUNT_ATTR_*; data: the file-system data string; bind: a bind mount; copyup: tmpcopyup.
Options = namedtuple("Options", "flags cleared propagation rec_set rec_clr data bind copyup")
# One mount: destination (in the container), type, source, options (Options).
Mount = namedtuple("Mount", "destination type source options")


def parse_options(options) -> Options:
    flags = cleared = rec_set = rec_clr = 0
    propagation, data = [], []
    copyup = False
    for option in options or ():
        if option in FLAGS:
            clears, flag = FLAGS[option]
            if clears:
                flags &= ~flag
                cleared |= flag
            else:
                flags |= flag
                cleared &= ~flag
        elif option in PROPAGATION:
            propagation.append(PROPAGATION[option])
        elif option in RECURSIVE:
            clears, attr = RECURSIVE[option]
            if clears:
                rec_clr |= attr
            else:
                rec_set |= attr
        elif option == "tmpcopyup":
            copyup = True
        elif option in ("idmap", "ridmap"):
            raise ValueError(f"mount option {option} (id-mapped mounts) is not supported by this runtime")
        else:
            data.append(option)
    return Options(flags, cleared, propagation, rec_set, rec_clr, ",".join(data) or None,
                   bool(flags & libc.MS_BIND), copyup)


def mount_entry(root: str, entry: Mount, bundle: str, cgroup_dirs=None) -> list:
    """Mount one config entry inside ROOT (before pivot_root). Returns [host paths] to make
    read-only in finalize() (a read-only tmpfs, mounted writable first)."""
    options = entry.options
    if entry.type == "cgroup" or (entry.type == "cgroup2" and cgroup_dirs is not None):
        return _mount_cgroup(root, entry, cgroup_dirs or [])
    if options.bind:
        source = entry.source if os.path.isabs(entry.source or "") else os.path.join(bundle, entry.source or "")
        if not os.path.exists(source):
            raise FileNotFoundError(2, f"bind mount source {source} does not exist", source)
        target = (paths_in_root.mkdir_all(root, entry.destination) if os.path.isdir(source)
                  else paths_in_root.create_file(root, entry.destination))
        libc.mount(source, target, None, options.flags & (libc.MS_BIND | libc.MS_REC))
        if options.flags & ~(libc.MS_BIND | libc.MS_REC | libc.MS_REMOUNT) or options.cleared:
            _remount_bind(target, source, options.flags)
        _propagate_and_recurse(target, options)
        return []
    target = paths_in_root.mkdir_all(root, entry.destination)
    flags, later = options.flags, []
    if entry.type == "tmpfs" and flags & libc.MS_RDONLY:
        flags &= ~libc.MS_RDONLY
        later.append(target)
    if entry.type == "tmpfs" and options.copyup:
        _tmpfs_copy_up(entry, target, flags, options.data)
    else:
        libc.mount(entry.source or entry.type, target, entry.type, flags, options.data)
    _propagate_and_recurse(target, options)
    return later


def _tmpfs_copy_up(entry: Mount, target: str, flags: int, data) -> None:
    """tmpcopyup: the tmpfs starts with a copy of what the image has at the destination (runc
    mounts it aside, copies, and moves it over the destination)."""
    import shutil
    import tempfile
    aside = tempfile.mkdtemp(prefix="vmm-oci-copyup-")
    try:
        libc.mount(entry.source or "tmpfs", aside, "tmpfs", flags, data)
        try:
            shutil.copytree(target, aside, symlinks=True, dirs_exist_ok=True)
            libc.mount(aside, target, None, libc.MS_MOVE)
        except BaseException:
            libc.umount2(aside, libc.MNT_DETACH)
            raise
    finally:
        os.rmdir(aside)


def _remount_bind(target: str, source: str, flags: int) -> None:
    flags |= libc.MS_BIND | libc.MS_REMOUNT
    try:
        libc.mount(None, target, None, flags & ~libc.MS_REC)
    except PermissionError:
        locked = source_flags(source) & LOCKED
        libc.mount(None, target, None, (flags | locked) & ~libc.MS_REC)


def source_flags(path: str) -> int:
    """The MS_* flags of the mount that holds `path` (from statvfs)."""
    f_flag = os.statvfs(path).f_flag
    return sum(ms for st, ms in _STATVFS_TO_MS if f_flag & st)


def _propagate_and_recurse(target: str, options: Options) -> None:
    for flag in options.propagation:
        libc.mount(None, target, None, flag)
    if options.rec_set or options.rec_clr:
        libc.mount_setattr(target, libc.AT_RECURSIVE, options.rec_set, options.rec_clr)


def _mount_cgroup(root: str, entry: Mount, cgroup_dirs: list) -> list:
    """cgroup v1: a tmpfs at the destination with each hierarchy's container directory bound under
    it by its mount name (cpu, memory...); cgroup v2: the container's directory bound there.
    cgroup_dirs: [(version, name, host directory)]."""
    read_only = entry.options.flags & libc.MS_RDONLY
    base = libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC
    if any(version == 1 for version, _, _ in cgroup_dirs):
        target = paths_in_root.mkdir_all(root, entry.destination)
        libc.mount("tmpfs", target, "tmpfs", base, "mode=755")
        for version, name, directory in cgroup_dirs:
            if version != 1:
                continue
            point = paths_in_root.mkdir_all(root, os.path.join(entry.destination, name))
            libc.mount(directory, point, None, libc.MS_BIND | libc.MS_REC)
            libc.mount(None, point, None, base | libc.MS_BIND | libc.MS_REMOUNT | (libc.MS_RDONLY if read_only else 0))
        _propagate_and_recurse(target, entry.options)
        return [target] if read_only else []
    target = paths_in_root.mkdir_all(root, entry.destination)
    unified = [directory for version, _, directory in cgroup_dirs if version == 2]
    if unified:
        libc.mount(unified[0], target, None, libc.MS_BIND | libc.MS_REC)
        libc.mount(None, target, None, base | libc.MS_BIND | libc.MS_REMOUNT | (libc.MS_RDONLY if read_only else 0))
    else:
        libc.mount("cgroup2", target, "cgroup2", base | (libc.MS_RDONLY if read_only else 0))
    _propagate_and_recurse(target, entry.options)
    return []


def finalize(read_only_later: list) -> None:
    """Make the tmpfs mounts that were asked read-only so (after device nodes went in)."""
    for target in read_only_later:
        libc.mount(None, target, None, libc.MS_REMOUNT | libc.MS_BIND | libc.MS_RDONLY | (source_flags(target) & LOCKED))


# --- the root ----------------------------------------------------------------------------------

def prepare_root(rootfs: str, propagation: int | None) -> None:
    """Before the mounts: make every mount a slave (or the configured propagation), so nothing
    done here reaches the host, and make ROOTFS a mount point (pivot_root needs one)."""
    initial = propagation if propagation else libc.MS_SLAVE | libc.MS_REC
    if initial & libc.MS_UNBINDABLE:
        initial = libc.MS_PRIVATE | libc.MS_REC    # an unbindable ROOTFS could not be bound below; after pivot
    libc.mount(None, "/", None, initial)
    if propagation and propagation & libc.MS_SHARED:
        # pivot_root refuses a shared parent mount; make the rootfs's parent mount private
        libc.mount(None, mount_point_of(os.path.dirname(rootfs)), None, libc.MS_PRIVATE)
    libc.mount(rootfs, rootfs, None, libc.MS_BIND | libc.MS_REC)


def mount_point_of(path: str) -> str:
    """The mount point that contains `path` (longest match in /proc/self/mountinfo)."""
    best = "/"
    with open("/proc/self/mountinfo") as file:
        for line in file:
            point = line.split()[4].replace("\\040", " ")
            if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) > len(best):
                best = point
    return best


def mounts_under(path: str) -> dict:
    """{mount id: mount point} of this mount namespace's mounts at or below `path`."""
    found = {}
    prefix = path.rstrip("/") + "/"
    with open("/proc/self/mountinfo") as file:
        for line in file:
            fields = line.split()
            point = fields[4].replace("\\040", " ")
            if point == path or point.startswith(prefix):
                found[fields[0]] = point
    return found


def unmount_added(path: str, before) -> None:
    """Detach every mount at or below `path` that is not in `before` (ids), deepest first: what a
    container without its own mount namespace mounted in the host's."""
    added = [point for mount_id, point in mounts_under(path).items() if mount_id not in set(before)]
    for point in sorted(added, key=lambda p: -p.count("/")):
        try:
            libc.umount2(point, libc.MNT_DETACH)
        except OSError:
            pass                        # gone already with its parent


def pivot(rootfs: str) -> None:
    """pivot_root into ROOTFS and detach the old root (pivot_root(2)'s "." "." form)."""
    old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.chdir(rootfs)
        libc.pivot_root(".", ".")
        os.fchdir(old_root)
        libc.mount(None, ".", None, libc.MS_SLAVE | libc.MS_REC)    # nothing of the unmount reaches the host
        libc.umount2(".", libc.MNT_DETACH)
    finally:
        os.close(old_root)
    os.chdir("/")


def move_root(rootfs: str) -> None:
    """--no-pivot: move ROOTFS over / and chroot into it (for a root on a ramdisk)."""
    os.chdir(rootfs)
    libc.mount(rootfs, "/", None, libc.MS_MOVE)
    os.chroot(".")
    os.chdir("/")


def apply_root_propagation(propagation: int | None) -> None:
    """After pivot_root: shared or unbindable root propagation (private and slave were set before)."""
    if propagation and not propagation & (libc.MS_PRIVATE | libc.MS_SLAVE):
        libc.mount(None, "/", None, propagation)


def make_root_read_only() -> None:
    libc.mount(None, "/", None, libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY | (source_flags("/") & LOCKED))


# --- masked and read-only paths (inside the container, after pivot_root) ----------------------

def mask(path: str) -> None:
    """Hide `path`: /dev/null over a file, an empty read-only tmpfs over a directory."""
    try:
        is_dir = os.path.isdir(path) and not os.path.islink(path)
        if not os.path.lexists(path):
            return
        if is_dir:
            libc.mount("tmpfs", path, "tmpfs", libc.MS_RDONLY, "size=0k")
        else:
            libc.mount("/dev/null", path, None, libc.MS_BIND)
    except (FileNotFoundError, NotADirectoryError):
        return


def read_only(path: str) -> None:
    """Bind `path` on itself and remount it read-only, keeping its nosuid/nodev/noexec."""
    try:
        libc.mount(path, path, None, libc.MS_BIND | libc.MS_REC)
    except (FileNotFoundError, NotADirectoryError):
        return
    keep = source_flags(path) & (libc.MS_NOSUID | libc.MS_NODEV | libc.MS_NOEXEC)
    libc.mount(path, path, None, keep | libc.MS_BIND | libc.MS_REMOUNT | libc.MS_RDONLY)
