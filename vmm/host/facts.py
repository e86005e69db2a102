"""Measurements of this host that take milliseconds and cannot change until the next boot or
library upgrade, remembered between runs, so that every `vmm run` does not pay for them again:

    tsc_khz = int(remembered(f"tsc-khz boot={boot_id()}", lambda: str(measure())))

The key names everything the value depends on (the boot, a library file's identity); a
changed dependency is a new key, measured afresh. The file is $XDG_CACHE_HOME/pyvmm/host-facts
(~/.cache/pyvmm/host-facts by default), one `KEY<TAB>VALUE` line each. A missing, unreadable,
unwritable or garbled file means measuring again, never an error; VMM_NO_HOST_FACTS=1 turns
the file off (every process measures for itself).
"""
import os
import stat

DISABLE_ENV = "VMM_NO_HOST_FACTS"
MAX_LINES = 64                      # older lines go: keys change with every boot
MAX_BYTES = MAX_LINES * 4096         # a larger file is not ours: ignored
_memory = {}                        # this process's facts (also when the file is off)


def cache_file() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pyvmm", "host-facts")


def boot_id() -> str:
    """This boot's random id (Linux), or "" if the kernel does not say."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as file:
            return file.read().strip()
    except OSError:
        return ""


def file_identity(path: str) -> str:
    """What changes when a file is replaced: device, inode, size and change time."""
    st = os.stat(path)
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_ctime_ns}"


def remembered(key: str, measure) -> str:
    """The value stored under `key`, else measure() (a str without tabs or newlines), stored."""
    if key in _memory:
        return _memory[key]
    enabled = os.environ.get(DISABLE_ENV, "") in ("", "0")
    lines = _read() if enabled else []
    for line in lines:
        stored_key, _, value = line.partition("\t")
        if stored_key == key and value:
            _memory[key] = value
            return value
    value = measure()
    if "\t" in value or "\n" in value or "\t" in key or "\n" in key:
        raise ValueError(f"host fact {key!r} = {value!r} cannot be stored")
    _memory[key] = value
    if enabled:
        _write([line for line in lines if not line.startswith(key + "\t")][-(MAX_LINES - 1):] + [f"{key}\t{value}"])
    return value


def _read() -> list:
    """The file's lines; none if it is not a regular file (a FIFO would block the open, a
    device such as /dev/zero would never end) or larger than MAX_LINES lines can be."""
    try:
        fd = os.open(cache_file(), os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return []
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES:
            return []
        text = os.read(fd, MAX_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    finally:
        os.close(fd)
    return [line for line in text.split("\n") if "\t" in line]


def _write(lines) -> None:
    path = cache_file()
    temporary = f"{path}.{os.getpid()}"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        try:
            os.unlink(temporary)            # left by a killed process of the same PID
        except FileNotFoundError:
            pass
        # A new file of our own, never whatever is there (a FIFO would block the open).
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with open(fd, "w", encoding="utf-8") as file:
            file.write("".join(line + "\n" for line in lines))
        os.replace(temporary, path)
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
