"""System calls formatted as strace prints them: `openat(AT_FDCWD, "/etc/passwd", O_RDONLY)
= 3`, `read(3, "root:x:0:0:"..., 4096) = 30`, `mmap(NULL, 8192, PROT_READ|PROT_WRITE,
MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7ffff7ff8000`, errors as `-1 ENOENT (No such file or
directory)`.

Each call has a signature: one kind per argument (SIGNATURES). Strings and structures the
kernel reads are decoded at entry, those it writes at exit, as strace does; a pointer that
cannot be read prints in hex. Strings are cut at 32 bytes, with "..." after the quote.
"""
import os
import struct

from .abi import errno_name, signal_name
from .threads import clone_text, futex_text

STRING_LIMIT = 32               # strace -s default
ARRAY_LIMIT = 32
AT_FDCWD = -100


def escape(data: bytes, complete: bool = True, hex_only: bool = False) -> str:
    """A C string literal as strace writes it (octal escapes as short as the next byte allows;
    every byte in hex for random data, as strace shows getrandom's)."""
    if hex_only:
        return '"' + "".join(f"\\x{b:02x}" for b in data) + '"' + ("" if complete else "...")
    out = []
    named = {9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r", 34: '\\"', 92: "\\\\"}
    for i, byte in enumerate(data):
        if byte in named:
            out.append(named[byte])
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            following = data[i + 1] if i + 1 < len(data) else None
            digits = following is not None and 48 <= following <= 55
            out.append(f"\\{byte:03o}" if digits else f"\\{byte:o}")
    return '"' + "".join(out) + '"' + ("" if complete else "...")


def c_octal(value: int) -> str:
    """A mode as strace prints it, C's %#03o: 0600, 022, 000."""
    return ("0" + format(value, "o") if value else "0").rjust(3, "0")


def flags(value: int, names, zero: str = "0") -> str:
    """value as NAME|NAME|0x..., names being (bit, name) pairs."""
    parts = []
    for bit, name in names:
        if value & bit == bit and bit:
            parts.append(name)
            value &= ~bit
    if value:
        parts.append(hex(value))
    return "|".join(parts) if parts else zero


OPEN_FLAGS = [(0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
              (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"),
              (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"), (0o100000, "O_LARGEFILE"),
              (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"), (0o400000, "O_NOFOLLOW"),
              (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"), (0o10000000, "O_PATH")]
PROT = [(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"), (0x1000000, "PROT_GROWSDOWN"),
        (0x2000000, "PROT_GROWSUP")]
MAP_FLAGS = [(0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x100, "MAP_GROWSDOWN"), (0x800, "MAP_DENYWRITE"),
             (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"), (0x4000, "MAP_NORESERVE"),
             (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"), (0x20000, "MAP_STACK"),
             (0x40000, "MAP_HUGETLB"), (0x100000, "MAP_FIXED_NOREPLACE")]
MAP_TYPES = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
AT_FLAGS = [(0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"), (0x400, "AT_SYMLINK_FOLLOW"),
            (0x800, "AT_NO_AUTOMOUNT"), (0x1000, "AT_EMPTY_PATH")]
MREMAP = [(1, "MREMAP_MAYMOVE"), (2, "MREMAP_FIXED"), (4, "MREMAP_DONTUNMAP")]
ACCESS = [(4, "R_OK"), (2, "W_OK"), (1, "X_OK")]
GRND = [(1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")]
RENAME = [(1, "RENAME_NOREPLACE"), (2, "RENAME_EXCHANGE"), (4, "RENAME_WHITEOUT")]
SA_FLAGS = [(1, "SA_NOCLDSTOP"), (2, "SA_NOCLDWAIT"), (4, "SA_SIGINFO"), (0x04000000, "SA_RESTORER"),
            (0x08000000, "SA_ONSTACK"), (0x10000000, "SA_RESTART"), (0x40000000, "SA_NODEFER"),
            (0x80000000, "SA_RESETHAND")]
WHENCE = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
FCNTL = {0: "F_DUPFD", 1: "F_GETFD", 2: "F_SETFD", 3: "F_GETFL", 4: "F_SETFL", 5: "F_GETLK", 6: "F_SETLK",
         7: "F_SETLKW", 1030: "F_DUPFD_CLOEXEC"}
IOCTL = {0x5401: "TCGETS", 0x5402: "TCSETS", 0x5403: "TCSETSW", 0x5404: "TCSETSF", 0x540E: "TIOCSCTTY",
         0x540F: "TIOCGPGRP", 0x5410: "TIOCSPGRP", 0x5413: "TIOCGWINSZ", 0x5414: "TIOCSWINSZ",
         0x541B: "FIONREAD", 0x5421: "FIONBIO", 0x5450: "FIONCLEX", 0x5451: "FIOCLEX",
         0x80081272: "BLKGETSIZE64", 0x1268: "BLKSSZGET", 0x125E: "BLKROGET"}
RLIMITS = ["RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
           "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
           "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME"]
CLOCKS = ["CLOCK_REALTIME", "CLOCK_MONOTONIC", "CLOCK_PROCESS_CPUTIME_ID", "CLOCK_THREAD_CPUTIME_ID",
          "CLOCK_MONOTONIC_RAW", "CLOCK_REALTIME_COARSE", "CLOCK_MONOTONIC_COARSE", "CLOCK_BOOTTIME"]
SIG_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS", 0x1004: "ARCH_GET_GS",
              0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"}
PRCTL = {1: "PR_SET_PDEATHSIG", 2: "PR_GET_PDEATHSIG", 3: "PR_GET_DUMPABLE", 4: "PR_SET_DUMPABLE",
         15: "PR_SET_NAME", 16: "PR_GET_NAME", 38: "PR_SET_NO_NEW_PRIVS", 39: "PR_GET_NO_NEW_PRIVS"}
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
           4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK", 11: "MADV_DOFORK",
           14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP"}
FILE_TYPES = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG", 0o60000: "S_IFBLK",
              0o40000: "S_IFDIR", 0o20000: "S_IFCHR", 0o10000: "S_IFIFO"}
NEVER_RETURN = {"exit", "exit_group"}
HEX_RESULT = {"mmap", "mremap", "brk"}

# One kind per argument. Kinds ending in "!" are written by the kernel (decoded at exit);
# "buf<N" is a buffer of args[N] bytes the kernel reads, "buf>" one it fills (ret bytes).
SIGNATURES = {
    "read": ("fd", "buf>", "u"), "write": ("fd", "buf<2", "u"), "open": ("path", "oflags", "mode?1"),
    "close": ("fd",), "stat": ("path", "stat!"), "fstat": ("fd", "stat!"), "lstat": ("path", "stat!"),
    "poll": ("ptr", "u", "d"), "lseek": ("fd", "ld", "whence"),
    "mmap": ("ptr", "u", "prot", "mapflags", "fd", "x"), "mprotect": ("ptr", "u", "prot"),
    "munmap": ("ptr", "u"), "brk": ("ptr",), "rt_sigaction": ("signal", "sigaction", "sigaction!", "u"),
    "rt_sigprocmask": ("sighow", "sigset", "sigset!", "u"), "rt_sigreturn": (),
    "ioctl": ("fd", "ioctl", "ptr"), "pread64": ("fd", "buf>", "u", "ld"), "pwrite64": ("fd", "buf<2", "u", "ld"),
    "readv": ("fd", "iov>", "u"), "writev": ("fd", "iov<", "u"), "access": ("path", "access"),
    "select": ("d", "ptr", "ptr", "ptr", "ptr"), "sched_yield": (), "mremap": ("ptr", "u", "u", "mremap", "ptr"),
    "msync": ("ptr", "u", "x"), "madvise": ("ptr", "u", "madvise"), "dup": ("fd",), "dup2": ("fd", "fd"),
    "nanosleep": ("timespec", "ptr"), "getpid": (), "sendfile": ("fd", "fd", "ptr", "u"), "exit": ("d",),
    "wait4": ("d", "ptr", "x", "ptr"), "kill": ("d", "signal"), "uname": ("ptr",),
    "fcntl": ("fd", "fcntl", "x"), "fsync": ("fd",), "fdatasync": ("fd",), "truncate": ("path", "ld"),
    "ftruncate": ("fd", "ld"), "getcwd": ("str!", "u"), "chdir": ("path",), "fchdir": ("fd",),
    "rename": ("path", "path"), "mkdir": ("path", "mode"), "rmdir": ("path",), "creat": ("path", "mode"),
    "link": ("path", "path"), "unlink": ("path",), "symlink": ("path", "path"), "readlink": ("path", "buf>", "u"),
    "chmod": ("path", "mode"), "fchmod": ("fd", "mode"), "chown": ("path", "d", "d"), "fchown": ("fd", "d", "d"),
    "lchown": ("path", "d", "d"), "umask": ("mode",), "gettimeofday": ("ptr", "ptr"),
    "getrlimit": ("rlimit", "rlim!"), "getrusage": ("d", "ptr"), "sysinfo": ("ptr",), "times": ("ptr",),
    "getuid": (), "getgid": (), "setuid": ("d",), "setgid": ("d",), "geteuid": (), "getegid": (),
    "setpgid": ("d", "d"), "getppid": (), "getpgrp": (), "setsid": (), "getgroups": ("d", "ptr"),
    "getpgid": ("d",), "getsid": ("d",), "rt_sigpending": ("sigset!", "u"), "sigaltstack": ("ptr", "ptr"),
    "mknod": ("path", "mode", "x"), "statfs": ("path", "ptr"), "fstatfs": ("fd", "ptr"),
    "mlock": ("ptr", "u"), "munlock": ("ptr", "u"), "prctl": ("prctl", "x", "x", "x", "x"),
    "arch_prctl": ("arch_prctl", "x"), "setrlimit": ("rlimit", "rlim"), "sync": (), "gettid": (),
    "tkill": ("d", "signal"), "time": ("ptr",), "futex": ("ptr", "d", "x", "ptr", "ptr", "x"),
    "sched_setaffinity": ("d", "u", "ptr"), "sched_getaffinity": ("d", "u", "ptr"),
    "getdents64": ("fd", "ptr", "u"), "set_tid_address": ("ptr",), "fadvise64": ("fd", "ld", "ld", "d"),
    "clock_gettime": ("clock", "timespec!"), "clock_getres": ("clock", "timespec!"),
    "clock_nanosleep": ("clock", "x", "timespec", "ptr"), "exit_group": ("d",),
    "tgkill": ("d", "d", "signal"), "openat": ("dirfd", "path", "oflags", "mode?2"),
    "mkdirat": ("dirfd", "path", "mode"), "mknodat": ("dirfd", "path", "mode", "x"),
    "fchownat": ("dirfd", "path", "d", "d", "atflags"), "newfstatat": ("dirfd", "path", "stat!", "atflags"),
    "unlinkat": ("dirfd", "path", "atflags"), "renameat": ("dirfd", "path", "dirfd", "path"),
    "linkat": ("dirfd", "path", "dirfd", "path", "atflags"), "symlinkat": ("path", "dirfd", "path"),
    "readlinkat": ("dirfd", "path", "buf>", "u"), "fchmodat": ("dirfd", "path", "mode"),
    "faccessat": ("dirfd", "path", "access"), "pselect6": ("d", "ptr", "ptr", "ptr", "ptr", "ptr"),
    "ppoll": ("ptr", "u", "ptr", "ptr", "u"), "set_robust_list": ("ptr", "u"),
    "utimensat": ("dirfd", "path", "ptr", "atflags"), "dup3": ("fd", "fd", "oflags"),
    "pipe2": ("ptr", "oflags"), "preadv": ("fd", "ptr", "u", "ld"), "pwritev": ("fd", "ptr", "u", "ld"),
    "prlimit64": ("d", "rlimit", "rlim", "rlim!"), "getcpu": ("ptr", "ptr", "ptr"),
    "renameat2": ("dirfd", "path", "dirfd", "path", "rename"), "getrandom": ("buf>", "u", "grnd"),
    "statx": ("dirfd", "path", "atflags", "x", "ptr"), "rseq": ("ptr", "u", "x", "x"),
    "close_range": ("fd", "fd", "x"), "faccessat2": ("dirfd", "path", "access", "atflags"),
    "clone": ("x", "ptr", "ptr", "ptr", "x"), "fork": (), "vfork": (), "execve": ("path", "ptr", "ptr"),
    "pipe": ("ptr",), "flock": ("fd", "x"), "personality": ("x",), "getpriority": ("d", "d"),
    "setpriority": ("d", "d", "d"),
}


class Call:
    """One system call between its entry and exit reports."""

    def __init__(self, name: str, args, memory):
        self.name, self.args, self.memory = name, args, memory
        signature = SIGNATURES.get(name)
        self.kinds = signature if signature is not None else ("x",) * 6
        self.text = [None] * len(self.kinds)
        if name in ("futex", "clone"):     # arguments by operation (threads.py): all read at entry
            self.text = futex_text(args, self._timespec) if name == "futex" else clone_text(args, flags)
            self.kinds = ("read",) * len(self.text)
            return
        for i, kind in enumerate(self.kinds):
            if not kind.endswith("!") and kind not in ("buf>", "iov>"):
                self.text[i] = self._argument(i, kind, None)

    def finish(self, ret: int | None) -> str:
        for i, kind in enumerate(self.kinds):
            if self.text[i] is None:
                self.text[i] = self._argument(i, kind, ret)
        shown = [t for t in self.text if t != ""]
        result = "?" if ret is None else result_text(self.name, ret)
        return f"{self.name}({', '.join(shown)}) = {result}"

    # --- arguments ---------------------------------------------------------------------------
    def _argument(self, i: int, kind: str, ret):
        value = self.args[i]
        signed = value - (1 << 64) if value >> 63 else value
        failed = ret is not None and -4096 < ret < 0
        if kind.startswith("mode?"):            # shown only when the flags create a file
            creating = self.args[int(kind[5:])] & 0o20200100
            return c_octal(value & 0o7777) if creating else ""
        int32 = (value & 0xFFFF_FFFF) - ((value & 0x8000_0000) << 1)     # an `int` argument
        simple = {
            "d": lambda: str(int32), "fd": lambda: str(int32),
            "ld": lambda: str(signed), "u": lambda: str(value), "x": lambda: hex(value) if value else "0",
            "dirfd": lambda: "AT_FDCWD" if int32 == AT_FDCWD else str(int32),
            "ptr": lambda: "NULL" if value == 0 else hex(value),
            "mode": lambda: c_octal(value & 0o7777),
            "oflags": lambda: open_flags(value), "prot": lambda: flags(value, PROT, "PROT_NONE"),
            "mapflags": lambda: map_flags(value), "whence": lambda: WHENCE.get(value, str(value)),
            "atflags": lambda: flags(value, AT_FLAGS), "fcntl": lambda: FCNTL.get(value, str(value)),
            "ioctl": lambda: IOCTL.get(value, hex(value)), "access": lambda: flags(value, ACCESS, "F_OK"),
            "mremap": lambda: flags(value, MREMAP), "grnd": lambda: flags(value, GRND),
            "rename": lambda: flags(value, RENAME), "madvise": lambda: MADVISE.get(value, str(value)),
            "rlimit": lambda: RLIMITS[value] if value < len(RLIMITS) else str(value),
            "clock": lambda: CLOCKS[value] if value < len(CLOCKS) else str(value),
            "signal": lambda: signal_name(value) if value else "0",
            "sighow": lambda: SIG_HOW.get(value, str(value)),
            "arch_prctl": lambda: ARCH_PRCTL.get(value, hex(value)), "prctl": lambda: PRCTL.get(value, str(value)),
        }
        if kind in simple:
            return simple[kind]()
        if value == 0:
            return "NULL"
        kind = kind.rstrip("!")
        if failed and kind in ("buf>", "iov>", "stat", "str", "sigset", "rlim", "timespec", "sigaction"):
            return hex(value)
        if kind == "path":
            return self._string(value, 4096, full=True)
        if kind == "str":
            return self._string(value, min(ret or 0, 4096), full=True) if ret and ret > 0 else hex(value)
        if kind.startswith("buf<"):
            return self._buffer(value, self.args[int(kind[4:])])
        if kind == "buf>":
            return self._buffer(value, ret or 0)
        if kind in ("iov<", "iov>"):
            return self._iovec(value, self.args[i + 1], None if kind == "iov<" else ret)
        decoder = {"stat": self._stat, "sigset": self._sigset, "rlim": self._rlim, "timespec": self._timespec,
                   "sigaction": self._sigaction}[kind]
        return decoder(value)

    def _read(self, address: int, length: int):
        return self.memory(address, length)

    def _string(self, address: int, limit: int, full: bool = False) -> str:
        """A NUL-terminated string, read page by page (it may end just below an unmapped page)."""
        data = b""
        while len(data) < limit and b"\0" not in data:
            chunk = self._read(address + len(data), min(limit - len(data), 4096 - (address + len(data)) % 4096))
            if chunk is None:
                break
            data += chunk
        if not data:
            return hex(address)
        end = data.find(b"\0")
        if end < 0 and not full:
            return escape(data[:STRING_LIMIT], False)
        return escape(data[:end] if end >= 0 else data)

    def _buffer(self, address: int, length: int) -> str:
        shown = min(length, STRING_LIMIT)
        data = self._read(address, shown)
        if data is None:
            return hex(address)
        return escape(data, complete=length <= STRING_LIMIT, hex_only=self.name == "getrandom")

    def _iovec(self, address: int, count: int, total) -> str:
        table = self._read(address, 16 * min(count, ARRAY_LIMIT))
        if table is None:
            return hex(address)
        parts, left = [], total
        for base, length in struct.iter_unpack("<QQ", table):
            shown = length if left is None else max(0, min(length, left))
            if left is not None:
                left -= shown
            parts.append(f"{{iov_base={self._buffer(base, shown) if base else 'NULL'}, iov_len={length}}}")
        return "[" + ", ".join(parts) + ("..." if count > ARRAY_LIMIT else "") + "]"

    def _stat(self, address: int) -> str:
        data = self._read(address, 144)
        if data is None:
            return hex(address)
        mode, = struct.unpack_from("<I", data, 24)
        rdev, size = struct.unpack_from("<Qq", data, 40)
        kind = FILE_TYPES.get(mode & 0o170000, c_octal(mode & 0o170000))
        text = f"st_mode={kind}|{mode & 0o7777:04o}"
        if mode & 0o170000 in (0o20000, 0o60000):
            return f"{{{text}, st_rdev=makedev({(rdev >> 8) & 0xFFF:#x}, {rdev & 0xFF}), ...}}"
        return f"{{{text}, st_size={size}, ...}}"

    def _sigset(self, address: int) -> str:
        data = self._read(address, 8)
        if data is None:
            return hex(address)
        mask, = struct.unpack("<Q", data)
        names = [signal_name(n + 1)[3:] for n in range(64) if mask >> n & 1]
        return "[" + " ".join(names) + "]"

    def _rlim(self, address: int) -> str:
        data = self._read(address, 16)
        if data is None:
            return hex(address)

        def one(v):
            return "RLIM64_INFINITY" if v == (1 << 64) - 1 else (f"{v // 1024}*1024" if v and v % 1024 == 0 else str(v))
        cur, top = struct.unpack("<QQ", data)
        return f"{{rlim_cur={one(cur)}, rlim_max={one(top)}}}"

    def _timespec(self, address: int) -> str:
        data = self._read(address, 16)
        if data is None:
            return hex(address)
        sec, nsec = struct.unpack("<qq", data)
        return f"{{tv_sec={sec}, tv_nsec={nsec}}}"

    def _sigaction(self, address: int) -> str:
        data = self._read(address, 32)
        if data is None:
            return hex(address)
        handler, sa_flags, restorer, mask = struct.unpack("<QQQQ", data)
        how = {0: "SIG_DFL", 1: "SIG_IGN"}.get(handler, hex(handler))
        names = " ".join(signal_name(n + 1)[3:] for n in range(64) if mask >> n & 1)
        extra = f", sa_restorer={restorer:#x}" if sa_flags & 0x04000000 else ""
        return f"{{sa_handler={how}, sa_mask=[{names}], sa_flags={flags(sa_flags, SA_FLAGS)}{extra}}}"


def open_flags(value: int) -> str:
    mode = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR", 3: "O_ACCMODE"}[value & 3]
    rest = flags(value & ~3, OPEN_FLAGS, "")
    return mode + ("|" + rest if rest else "")


def map_flags(value: int) -> str:
    kind = MAP_TYPES.get(value & 0xF, hex(value & 0xF))
    rest = flags(value & ~0xF, MAP_FLAGS, "")
    return kind + ("|" + rest if rest else "")


def result_text(name: str, ret: int) -> str:
    if -4096 < ret < 0:
        number = -ret
        message = os.strerror(number) if number in ERRNO_MESSAGES else "Unknown error"
        return f"-1 {errno_name(number)} ({message})"
    if name in HEX_RESULT:
        return hex(ret & ((1 << 64) - 1))
    if name == "umask":                 # the old mask, in octal as strace shows it
        return c_octal(ret)
    return str(ret)


ERRNO_MESSAGES = set(range(1, 134))
