"""Paths inside a container's root file system, resolved as the container would see them.

A path from a config (a mount's destination, a device node) is resolved component by component
with every symlink read and followed *inside* ROOT: an absolute link target restarts at ROOT, and
`..` never climbs above it (like runc's securejoin). So an image whose /dev is a symlink to
/../../etc cannot make a mount land on the host's /etc. Missing components are kept as written
and created by the helpers below, as runc creates missing mount points.
The container's own processes are not running yet when these are used (create time), so the
tree cannot change under the walk except by the runtime itself.
"""
import os
import stat
from collections import deque

MAX_SYMLINKS = 255          # as Linux's path walk (40 per path, but runc's securejoin allows 255)


class PathError(OSError):
    pass


def resolve(root: str, path: str) -> str:
    """The host path of `path` seen from inside ROOT (ROOT itself for "/")."""
    parts = deque(p for p in path.split("/") if p)
    current = []
    links = 0
    while parts:
        part = parts.popleft()
        if part == ".":
            continue
        if part == "..":
            if current:
                current.pop()
            continue
        candidate = os.path.join(root, *current, part)
        try:
            mode = os.lstat(candidate).st_mode
        except (FileNotFoundError, NotADirectoryError):
            current.append(part)
            continue
        if not stat.S_ISLNK(mode):
            current.append(part)
            continue
        links += 1
        if links > MAX_SYMLINKS:
            raise PathError(40, f"too many levels of symbolic links in {path}", path)     # ELOOP
        target = os.readlink(candidate)
        if target.startswith("/"):
            current = []
        parts.extendleft(reversed([p for p in target.split("/") if p]))
    return os.path.join(root, *current) if current else root


def resolve_parent(root: str, path: str) -> str:
    """As resolve(), except that the last component is not followed: the host path at which to
    create `path` itself (a device node, a symlink), as mknodat/symlinkat on its parent would."""
    parent, name = os.path.split(path.rstrip("/"))
    if name in ("", ".", ".."):
        return resolve(root, path)
    return os.path.join(resolve(root, parent or "/"), name)


def mkdir_all(root: str, path: str, mode: int = 0o755) -> str:
    """Create directory `path` inside ROOT (and its parents); returns its host path."""
    host = resolve(root, path)
    try:
        os.makedirs(host, mode, exist_ok=True)
    except FileExistsError:
        raise PathError(20, f"{path} exists and is not a directory", path) from None   # ENOTDIR
    return host


def create_file(root: str, path: str, mode: int = 0o644) -> str:
    """Create an empty file at `path` inside ROOT if nothing is there (a file bind-mount's target)."""
    mkdir_all(root, os.path.dirname(path.rstrip("/")) or "/")
    host = resolve(root, path)
    os.makedirs(os.path.dirname(host), 0o755, exist_ok=True)      # a final symlink may point elsewhere
    if not os.path.lexists(host):
        fd = os.open(host, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        os.close(fd)
    return host
