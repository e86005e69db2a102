"""Every file a user names is opened here: kernels, programs, initrds, firmware, disk images
(and, later, snapshots) to read; serial and trace output to write. New code that takes a path
from the user uses these functions, so that the same rules hold everywhere:

- Nothing blocks: every open is O_NONBLOCK (a FIFO with nobody at the other end would
  otherwise block for ever) and the type is checked on the open descriptor (fstat).
- An input is a regular file (a disk may also be a block device). A FIFO, a device such
  as /dev/zero, a directory or a socket is InputError (66), with what it is.
- An input is sized before it is read, and refused at once when it is larger than the limit
  the caller gives (the RAM it must fit in): nothing unbounded is ever read.
- An output is a regular file (truncated), a character device (a terminal, /dev/null) or a
  FIFO that a reader already holds open; a block device, a directory, a missing folder or a
  FIFO without a reader is InputError (66).
- A disk image is locked as QEMU locks its images (host/file_locks.py): shared for a
  read-only disk, exclusive for a writable one; a conflict names the other holder. A
  writable disk whose file has no write permission bit is refused even for root, as it is
  for other users (add `,ro`).
"""
import errno
import os
import stat

from .errors import ImageError, InputError, UsageError
from .host import file_locks

KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
         (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
READ_CHUNK = 1 << 20


def kind_of(mode: int) -> str:
    for test, name in KINDS:
        if test(mode):
            return name
    return "a regular file" if stat.S_ISREG(mode) else "not a regular file"


def format_bytes(size: int) -> str:
    for unit, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit:
            return f"{size / unit:.1f} {suffix}"
    return f"{size} bytes"


def _open(path, what: str, flags: int, mode: int = 0) -> int:
    if path is None or not os.fspath(path):
        raise UsageError(f"no file name given for the {what}")
    try:
        return os.open(path, flags | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC, mode)
    except FileNotFoundError:
        if flags & os.O_CREAT:
            raise InputError(f"cannot create {what} {path}: its folder does not exist") from None
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as error:
        if error.errno == errno.ENXIO:
            raise InputError(f"{what} {path} is a FIFO that no process reads, or a device that is "
                             "not there") from None
        raise InputError(f"cannot open {what} {path}: {error.strerror}") from None


class InputFile:
    """A regular file opened for reading: `size`, head(n) for its first bytes, read() for all
    of it. Use as a context manager (the descriptor is closed on exit)."""

    def __init__(self, path, what: str):
        self.path, self.what = path, what
        self.fd = _open(path, what, os.O_RDONLY)
        try:
            st = os.fstat(self.fd)
            if not stat.S_ISREG(st.st_mode):
                raise InputError(f"{what} {path} is {kind_of(st.st_mode)}, not a regular file")
            self.size = st.st_size
        except BaseException:
            self.close()
            raise

    def head(self, count: int) -> bytes:
        """Up to `count` bytes from the start."""
        return self.read_at(0, min(count, self.size))

    def read(self, limit: int, room: str, too_big=ImageError) -> bytes:
        """All of it; `too_big` (an error class) at once if it is over `limit` bytes, saying
        it does not fit in `room` (for example "the guest's 64M of RAM")."""
        if self.size > limit:
            raise too_big(f"{self.what} {self.path} is {format_bytes(self.size)}: it does not fit in {room}")
        return self.read_at(0, self.size)

    def read_at(self, offset: int, count: int) -> bytes:
        """Up to `count` bytes from `offset` (fewer at the end of the file)."""
        chunks, done = [], 0
        try:
            while done < count:
                chunk = os.pread(self.fd, min(READ_CHUNK, count - done), offset + done)
                if not chunk:
                    break                   # the file shrank meanwhile: what there is
                chunks.append(chunk)
                done += len(chunk)
        except OSError as error:
            raise InputError(f"cannot read {self.what} {self.path}: {error.strerror}") from None
        return b"".join(chunks)

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def read_input(path, what: str, limit: int, room: str, too_big=ImageError) -> bytes:
    """The whole regular file at `path`, at most `limit` bytes (InputFile.read)."""
    with InputFile(path, what) as file:
        return file.read(limit, room, too_big)


def open_output(path, what: str) -> int:
    """A blocking descriptor for writing `what` at `path` (module docstring): a regular file
    is created or truncated."""
    def prepare(fd):
        mode = os.fstat(fd).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
            raise InputError(f"{what} {path} is {kind_of(mode)}: write it to a regular file, a terminal or a pipe")
        if stat.S_ISREG(mode):
            os.ftruncate(fd, 0)
        os.set_blocking(fd, True)
    return _prepared(_open(path, what, os.O_WRONLY | os.O_CREAT, 0o644), prepare, f"cannot write {what} {path}")


def open_disk(path, read_only: bool) -> int:
    """A blocking descriptor for a disk image (a regular file or a block device), opened
    read-only or read-write and locked (module docstring)."""
    try:
        fd = _open(path, "disk image", os.O_RDONLY if read_only else os.O_RDWR)
    except InputError as error:
        if not read_only and os.path.exists(path) and not os.access(path, os.W_OK):
            raise InputError(f"cannot open disk image {path} for writing: {_no_write(path)}; "
                             "attach it read-only with `,ro`") from None
        raise error from None

    def prepare(fd):
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InputError(f"disk image {path} is {kind_of(st.st_mode)}, not a regular file or block device")
        if not read_only and stat.S_ISREG(st.st_mode) and not st.st_mode & 0o222:
            raise InputError(f"disk image {path} is read-only (mode {stat.S_IMODE(st.st_mode):04o}): "
                             "attach it with `,ro`, or make it writable")
        os.set_blocking(fd, True)
        _lock(fd, path, read_only)
    return _prepared(fd, prepare, f"cannot use disk image {path}")


def _prepared(fd: int, prepare, failure: str) -> int:
    """`fd` once prepare(fd) (checks, locks) has passed; else it is closed, and an OSError
    becomes InputError("failure: reason")."""
    try:
        prepare(fd)
        return fd
    except OSError as error:
        os.close(fd)
        raise InputError(f"{failure}: {error.strerror}") from None
    except BaseException:
        os.close(fd)
        raise


def _no_write(path) -> str:
    return "the file is read-only" if os.path.isfile(path) else "permission denied"


def _lock(fd: int, path, read_only: bool) -> None:
    try:
        file_locks.lock_image(fd, write=not read_only)
    except file_locks.Conflict as conflict:
        access = "read-only" if read_only else "read-write"
        holders = file_locks.lock_holders(fd)
        if any(pid == os.getpid() for pid, _ in holders):
            raise InputError(f"disk image {path} is attached twice to this VM (--disk), and not only for "
                             "reading: attach it once") from None
        who = ", ".join(f"process {pid} ({command})" for pid, command in holders) or "another process"
        raise InputError(f"cannot attach disk image {path} {access}: {who} holds it (the {conflict.permission} "
                         "lock, as QEMU locks images)") from None


class OutputText:
    """A buffered text output (open_output's rules) whose write errors do not raise: the
    first one is passed to `on_error(text)` (the machine ends the run with it) and later
    writes are dropped. For traces, whose writes happen inside the engine's callbacks."""

    def __init__(self, path, what: str, on_error=None, buffering: int = 1 << 16):
        self.what = what
        self.on_error = on_error
        self.error = None
        self._file = os.fdopen(open_output(path, what), "w", buffering=buffering)

    def write(self, text: str) -> None:
        if self.error is None:
            try:
                self._file.write(text)
            except OSError as error:
                self._failed(error)

    def flush(self) -> None:
        if self.error is None and self._file is not None:
            try:
                self._file.flush()
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        self.error = f"cannot write the {self.what}: {error.strerror}"
        if self.on_error is not None:
            self.on_error(self.error)

    def close(self) -> None:
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.close()
        except OSError as error:
            if self.error is None:
                self._failed(error)
