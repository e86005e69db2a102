"""MachineConfig: everything that describes one VM, validated with one-line errors."""
from .records import field, record

from . import layout
from .errors import UsageError

ACCELERATORS = ("kvm", "unicorn", "auto")
DEFAULT_CMDLINE = "console=ttyS0"
IDLE_POLICIES = ("sleep", "skip")
# A stock Linux kernel's defaults: the serial console; reboot at once on a panic (so the VM
# ends instead of hanging); and trust the TSC, whose rate CPUID leaf 0x15 states: on our
# hardware-reduced ACPI platform the only other clocksource is jiffies, which the clocksource
# watchdog would otherwise compare it with (QEMU microvm's guests mark their TSC unstable so).
LINUX_CMDLINE = "console=ttyS0 panic=-1 tsc=reliable"
LINUX_MEM_SIZE = 256 * layout.MiB      # Debian's kernels decompress at 16 MiB into ~50 MiB
SIZE_SUFFIXES = {"": 1, "K": layout.KiB, "M": layout.MiB, "G": layout.GiB}
MAX_TIMEOUT = 366 * 24 * 3600           # seconds (a year): longer is a typo, and NaN or infinity break timers


def parse_size(text: str) -> int:
    """'64M', '1G', '512K' or a number of bytes; binary units (also written 64MB, 64MiB).
    Plain string work: importing `re` would cost `vmm run` milliseconds of start-up."""
    body = str(text).strip().upper()
    if body.endswith("B"):
        body = body[:-1].removesuffix("I")
    suffix = body[-1:] if body[-1:] in ("K", "M", "G") else ""
    number = body[:len(body) - len(suffix)].strip()
    if not number.isdecimal():
        raise UsageError(f"cannot read size {text!r}: use a number with an optional K, M or G suffix, like 64M")
    return int(number) * SIZE_SUFFIXES[suffix]


def format_size(size: int) -> str:
    for suffix, unit in (("G", layout.GiB), ("M", layout.MiB), ("K", layout.KiB)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def check_timeout(seconds) -> None:
    """A timeout is a positive, finite number of seconds, at most MAX_TIMEOUT."""
    if not (isinstance(seconds, (int, float)) and 0 < seconds <= MAX_TIMEOUT):
        raise UsageError(f"--timeout must be a number of seconds above 0 and at most {MAX_TIMEOUT} (a year), "
                         f"not {seconds}")


def is_clean_text(text: str) -> bool:
    """UTF-8 encodable (no undecodable command-line bytes, which Python keeps as lone
    surrogates) and without NUL, so that it survives the trip into guest memory."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\0" not in text


@record
class DiskSpec:
    path: str
    read_only: bool = False

    @classmethod
    def parse(cls, text: str) -> "DiskSpec":
        """`PATH` or `PATH,ro` (the --disk syntax)."""
        path, _, options = str(text).partition(",")
        if not path:
            raise UsageError(f"--disk {text!r} names no file")
        if options not in ("", "ro", "rw"):
            raise UsageError(f"--disk {text!r}: the only options are ro and rw")
        return cls(path, read_only=options == "ro")


@record
class MachineConfig:
    kernel: str
    initrd: str | None = None           # the guest program (static ELF) or a .cpio[.gz]: module 0
    rootfs: str | None = None           # a directory packed as the root file system (instead of initrd)
    cmdline: str | None = None          # None: the default for the kind of kernel (DEFAULT_CMDLINE, LINUX_CMDLINE)
    program_args: list = field(default_factory=list)   # appended to cmdline after " -- "
    mem_size: int | str | None = None   # None: DEFAULT_MEM_SIZE, or LINUX_MEM_SIZE for a Linux bzImage
    accel: str = "auto"
    serial: str = "capture"             # capture | stdio | none | file:PATH (output is always captured too)
    stdin: bytes | None = None          # bytes for the guest's serial input, if any
    timeout: float | None = None        # seconds
    firmware: str | None = None         # boot through this firmware image (fw_cfg hands it the kernel)
    fw_cfg_dma: bool = True             # offer fw_cfg's DMA interface (off: the firmware reads byte by byte)
    disks: list = field(default_factory=list)   # [DiskSpec]: virtio-blk devices, vda first
    strace: str | None = None           # report every guest system call: "-" (stderr) or a file path
    idle: str = "sleep"                 # sleep | skip: an idle vCPU waits for its timer, or jumps the clock there

    def __post_init__(self):
        self.disks = [d if isinstance(d, DiskSpec) else DiskSpec.parse(d) for d in self.disks]

    def validate(self) -> None:
        if self.accel not in ACCELERATORS:
            raise UsageError(f"unknown accelerator {self.accel!r}: choose one of {', '.join(ACCELERATORS)}")
        if self.mem_size is None:
            self.mem_size = layout.DEFAULT_MEM_SIZE
        if not isinstance(self.mem_size, int):
            self.mem_size = parse_size(self.mem_size)
        if self.mem_size < layout.MIN_MEM_SIZE:
            raise UsageError(f"--mem {format_size(self.mem_size)} is too small: the minimum is "
                             f"{format_size(layout.MIN_MEM_SIZE)}")
        if self.mem_size > layout.MAX_MEM_SIZE:
            raise UsageError(f"--mem {format_size(self.mem_size)} is too large: the maximum is "
                             f"{format_size(layout.MAX_MEM_SIZE)} (RAM must end below the MMIO hole)")
        if self.mem_size % layout.PAGE_SIZE:
            raise UsageError(f"--mem must be a multiple of 4K, not {self.mem_size} bytes")
        if not (self.serial in ("capture", "stdio", "none") or self.serial.startswith("file:") and len(self.serial) > 5):
            raise UsageError(f"unknown --serial {self.serial!r}: use stdio, none or file:PATH")
        if self.idle not in IDLE_POLICIES:
            raise UsageError(f"unknown --idle {self.idle!r}: choose one of {', '.join(IDLE_POLICIES)}")
        if self.timeout is not None:
            check_timeout(self.timeout)
        for what, text in (("--cmdline", self.cmdline), *(("program argument", arg) for arg in self.program_args)):
            if text is not None and not is_clean_text(text):
                raise UsageError(f"{what} {text.encode('utf-8', 'surrogateescape')!r} is not valid UTF-8 text "
                                 "(or holds a NUL byte), "
                                 "which a kernel command line cannot carry")
        if self.rootfs is not None and self.initrd is not None:
            raise UsageError("give a root file system either as --rootfs DIR or as --initrd FILE.cpio, not both")
        for arg in self.program_args:
            if not arg or any(c.isspace() for c in arg):
                raise UsageError(f"program argument {arg!r} is empty or holds white space, "
                                 "which the kernel command line cannot carry")

    def full_cmdline(self, kernel_params=(), default: str = DEFAULT_CMDLINE) -> str:
        """The kernel command line: the VMM's parameters (device announcements, strace), the
        user's command line (or `default`), then the program's arguments after `--` (with a
        root file system, the first is the program to run)."""
        line = " ".join([*kernel_params, *(["strace"] if self.strace else []),
                         default if self.cmdline is None else self.cmdline]).strip()
        if self.program_args:
            line += f" -- {' '.join(self.program_args)}"
        return line
