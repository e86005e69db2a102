"""Machine: builds a VM from a MachineConfig (memory, devices, boot, engine), runs it, and
returns a RunResult. This is the public API:

    from vmm import Machine, MachineConfig
    with Machine(MachineConfig(kernel="guest/build/kernel.elf", initrd="guest/build/programs/hello")) as vm:
        result = vm.run()
    print(result.serial.decode(), result.status)
"""
import os
import sys
import threading
import time
from contextlib import ExitStack

from . import layout
from .arch.x86.cpuid import build_table
from .board import acpi_tables, add_pc_devices
from .config import LINUX_CMDLINE, LINUX_MEM_SIZE, MachineConfig, format_size
from .debug.session import DebugOptions, DebugSession
from .devices.bus import MmioBus, PortBus
from .devices.debug_exit import DebugExit
from .devices.irq import DeferredLine
from .devices.uart import Uart16550
from .devices.virtio.console import VirtioConsole
from .devices.virtio.mmio import MmioTransport
from .devices.virtio.rng import VirtioRng
from .errors import (AcceleratorUnavailable, GuestCrashed, GuestTimeout, ImageError, InputError, OutputError, UsageError,
                     VmmError)
from .loader.detect import BZIMAGE, MULTIBOOT, PVH, is_bzimage, kernel_format
from .loader.elf import ElfImage
from .loader.program import check_program
from .loader.pvh import load_pvh
from .memory import GuestMemory
from .outcome import CRASHES, DEBUG_EXIT, INTERRUPTED, OUTPUT_ERROR, PAUSED, TIMEOUT, Outcome, PauseGate, RunControl
from .records import field, record
from .serial_sink import SerialSink
from .user_files import InputFile, OutputText, read_input

# Only what a plain run of the tiny kernel uses is imported above: the engine, the Linux and
# Multiboot loaders, the firmware's devices and virtio-blk are imported where they are used
# (`vmm bench startup` counts the modules a run imports; tests/test_import_budget.py lists them).
# Engines are imported only when chosen: unicorn costs start-up time that KVM runs need not pay.
ENGINES = {"kvm": ("vmm.engines.kvm", "KvmEngine"), "unicorn": ("vmm.engines.unicorn", "UnicornEngine")}
SIGINT_STATUS = 130
CLOSE_WAIT = 10.0               # seconds close() waits for a run in another thread to stop


def engine_class(name: str):
    module, cls = ENGINES[name]
    return getattr(__import__(module, fromlist=[cls]), cls)


NO_KVM_ENV = "VMM_NO_KVM"         # set to 1: behave as if /dev/kvm were missing (CI's second run)


def probe(name: str) -> str | None:
    """None if engine `name` can run here, else the reason it cannot."""
    if name == "kvm" and os.environ.get(NO_KVM_ENV, "") not in ("", "0"):
        return f"KVM disabled by {NO_KVM_ENV}"
    return engine_class(name).probe()


def choose_engine(accel: str):
    """(engine class, note): `auto` takes KVM when /dev/kvm opens and works, else unicorn."""
    if accel == "auto":
        reason = probe("kvm")
        if reason is None:
            return engine_class("kvm"), "auto: KVM works"
        unicorn_reason = probe("unicorn")
        if unicorn_reason is None:
            return engine_class("unicorn"), f"auto: fell back to unicorn ({reason})"
        raise AcceleratorUnavailable(f"no engine can run here: {reason}; {unicorn_reason}")
    if accel not in ENGINES:
        raise UsageError(f"unknown accelerator {accel!r}")
    reason = probe(accel)
    if reason is not None:
        raise AcceleratorUnavailable(reason)
    return engine_class(accel), accel


def ram_room(mem_size: int) -> str:
    return f"the guest's {format_size(mem_size)} of RAM (--mem, at most {format_size(layout.MAX_MEM_SIZE)})"


def read_for_ram(file: InputFile, mem_size: int) -> bytes:
    """All of `file` if it can fit in `mem_size` of guest RAM: else a UsageError when a larger
    --mem would do, an ImageError when not even the maximum would."""
    return file.read(mem_size, ram_room(mem_size), UsageError if file.size <= layout.MAX_MEM_SIZE else ImageError)


def boot_module(config: MachineConfig) -> bytes | None:
    """PVH module 0: the root file system (a directory packed, or a .cpio[.gz] repacked) or a
    single static program, checked here rather than in the guest."""
    if config.rootfs is not None:
        return rootfs_module(config.rootfs, config.program_args[0] if config.program_args else "")
    if not config.initrd:
        return None
    with InputFile(config.initrd, "program") as file:
        module = read_for_ram(file, config.mem_size)
    if module[:4] == b"\x7fELF":           # the common case: vmm.initramfs (and zlib) stay unloaded
        check_program(module)               # refuse a program the tiny kernel cannot run here, not in the guest
        return module
    from . import initramfs
    return initramfs.load_initrd(module, config.initrd)[1]      # an archive, repacked


def rootfs_module(rootfs: str, program: str) -> bytes:
    """The directory packed as a newc archive, once PROGRAM is known to be in it."""
    from . import initramfs
    if initramfs.find_program(rootfs, program) is None and os.path.isdir(rootfs):
        if not program:
            raise InputError(f"no program given (`-- PROGRAM ARGS`), and the root file system {rootfs} "
                             f"has neither {' nor '.join(initramfs.image.DEFAULT_PROGRAMS)}")
        where = "" if "/" in program else f" (looked in {':'.join(initramfs.image.SEARCH_PATH)})"
        raise InputError(f"program {program} not found in the root file system {rootfs}{where}")
    return initramfs.pack_directory(rootfs)


def check_firmware_image(path: str, image: bytes) -> None:
    """A -bios image's size is a multiple of 64 KiB (QEMU's rule) and, here, at most 256 KiB."""
    if not image or len(image) % layout.FIRMWARE_SIZE_UNIT:
        raise ImageError(f"firmware {path} is {len(image)} bytes; its size must be a non-zero multiple of 64 KiB")


@record
class RunResult:
    reason: str                 # an outcome reason (vmm/outcome.py)
    status: int | None          # what the guest wrote to the debug-exit port, if anything
    detail: str
    serial: bytes
    engine: str
    stats: dict = field(default_factory=dict)
    cpu_report: str = ""        # register dump for crashes and timeouts

    @property
    def exit_status(self) -> int:
        """The process exit status `vmm run` uses for this result."""
        if self.reason == DEBUG_EXIT:
            return self.status & 0xFF
        if self.reason in CRASHES:
            return GuestCrashed.exit_status
        if self.reason == TIMEOUT:
            return GuestTimeout.exit_status
        if self.reason == OUTPUT_ERROR:
            return OutputError.exit_status
        if self.reason == INTERRUPTED:
            return self.status if self.status is not None else SIGINT_STATUS
        return 0                    # halt with interrupts off, or a power-off event


class Machine:
    def __init__(self, config: MachineConfig, debug: DebugOptions | None = None, *, snapshot=None):
        """Build the VM `config` describes and load its boot; or, with `snapshot` (what
        Machine.restore opens, vmm/snapshot/load.py), rebuild a saved VM in the state it was
        saved in: its RAM mapped from the snapshot, every device and the vCPU as they were."""
        self.created = time.monotonic()
        self.config = config
        self._running = threading.Lock()    # held by run() and close(): never both at once
        self._run_thread = None
        self._closed = False
        self._cleanup = ExitStack()
        if snapshot is None:
            with InputFile(config.kernel, "kernel") as kernel_file:
                # The header says whether this is Linux, whose default RAM is larger; the file is
                # read only once it is known to fit.
                if config.mem_size is None and is_bzimage(kernel_file.head(layout.PAGE_SIZE)):
                    config.mem_size = LINUX_MEM_SIZE
                config.validate()
                kernel_data = read_for_ram(kernel_file, config.mem_size)
            self.kernel_format = kernel_format(kernel_data)
        else:
            self.kernel_format = snapshot.kernel_format
            config.validate()
        self.debug = DebugSession(debug)     # tracing, exit statistics, gdb: no-ops by default
        self.debug.on_output_error = self._output_failed
        if snapshot is None:
            kernel = self._parse_kernel(kernel_data)
            if self.kernel_format == PVH:
                module = boot_module(config)
            else:
                if config.rootfs is not None or config.strace:
                    raise UsageError(f"--rootfs and --strace are for the tiny kernel (PVH); for this "
                                     f"{self.kernel_format} kernel pass a .cpio[.gz] as --initrd")
                module = None
                if config.initrd is not None:
                    with InputFile(config.initrd, "initrd" if self.kernel_format == BZIMAGE else "program") as file:
                        module = read_for_ram(file, config.mem_size)
            if config.firmware and self.kernel_format != PVH:
                raise UsageError(f"--firmware boots PVH kernels only; boot this {self.kernel_format} kernel directly")
        choosing = time.monotonic()
        engine_cls, self.accel_note = choose_engine(config.accel)
        self.engine_seconds = time.monotonic() - choosing

        try:
            self.memory = self._cleanup.enter_context(
                snapshot.memory() if snapshot is not None else GuestMemory(config.mem_size))
            # A restore: the engine's share of the host's work (KVM: the VM and its vCPU), on
            # another thread while the devices load their state. A boot keeps the plain path.
            prepared = engine_cls.prepare(self.memory) if snapshot is not None else None
            if prepared is not None:
                self._cleanup.callback(prepared.discard)
            self.control = RunControl()
            self.ports = PortBus()
            self.mmio = MmioBus()
            self.serial = SerialSink(config.serial, on_error=self._output_failed)
            self._cleanup.callback(self.serial.close)
            self.irq_lines = {}
            self.uart = Uart16550(output=self.serial.put, irq=self._irq(layout.COM1_IRQ))
            self.ports.register(layout.COM1_PORT, layout.COM1_PORT_COUNT, self.uart)
            self.ports.register(layout.DEBUG_EXIT_PORT, layout.DEBUG_EXIT_PORT_COUNT, DebugExit(self.control))
            self.board_devices = add_pc_devices(self.ports, self.control)
            if config.strace:
                self._add_strace(config.strace)
            kernel_params = self._add_virtio_devices()
            self.fw_cfg = None
            if snapshot is None:
                rsdp = self._write_acpi_tables()
                self.cmdline = cmdline = self._cmdline(kernel_params)
                if config.firmware:
                    boot_state = self._boot_through_firmware(kernel, module, cmdline)
                elif self.kernel_format == BZIMAGE:
                    from .loader.bzimage import load_bzimage
                    boot_state = load_bzimage(self.memory, kernel, module, cmdline, rsdp)
                elif self.kernel_format == MULTIBOOT:
                    from .loader.multiboot import load_multiboot
                    boot_state = load_multiboot(self.memory, kernel, module, cmdline)
                else:
                    boot_state = load_pvh(self.memory, kernel, module, cmdline, rsdp)
                self.cpuid = build_table(engine_cls.tsc_khz())
            else:
                self.cmdline = snapshot.cmdline
                self.fw_cfg = snapshot.fw_cfg(self.memory)
                if self.fw_cfg is not None:
                    self.fw_cfg.register(self.ports)
                self.cpuid = snapshot.cpuid()
            engine_ports, engine_mmio = self.debug.wrap_buses(self.ports, self.mmio)
            self.engine = engine_cls(self.memory, engine_ports, engine_mmio, self.control, self.cpuid,
                                     **({"prepared": prepared} if prepared is not None else {}))
            self._cleanup.callback(self.engine.close)
            if snapshot is None:
                self.engine.set_state(boot_state)
                if self.kernel_format == BZIMAGE:
                    self.engine.leave_lint0_masked()
            self.engine.skip_idle_time(config.idle == "skip")
            self.debug.attach(self.engine)                  # binds the gdb port, if any
            self._cleanup.callback(self.debug.close)        # runs before engine.close
            if snapshot is not None:
                snapshot.restore_line_levels(self.irq_lines)
            # The interrupt controller belongs to the engine, so lines connect only now.
            for gsi, line in self.irq_lines.items():
                line.connect(self.engine.irq_line(gsi))
            if snapshot is not None:
                snapshot.apply(self)                        # devices, the platform, the vCPU
            self.gate = PauseGate(self.control, self.engine)
            self._snapshots = None                          # vmm/snapshot/save.py's, once used
            if config.stdin:
                self.uart.feed(config.stdin)
        except BaseException:
            self._cleanup.close()
            raise
        self.ready = time.monotonic()

    def _add_strace(self, target: str) -> None:
        """The port the kernel reports system calls through, printing to stderr or a file."""
        from .strace import StraceDevice        # only when asked: it costs start-up time
        if target == "-":
            out = sys.stderr
        else:
            out = OutputText(target, "strace output", self._output_failed, buffering=1)
            self._cleanup.callback(out.close)
        self.ports.register(layout.STRACE_PORT, layout.STRACE_PORT_COUNT, StraceDevice(self.memory, out))

    @classmethod
    def restore(cls, path: str, accel: str = "auto", serial: str = "capture", disks=None, timeout=None,
                force: bool = False, idle: str | None = None, stdin: bytes | None = None,
                debug: DebugOptions | None = None) -> "Machine":
        """The VM saved in snapshot directory `path`, ready to run() on `accel` (either engine,
        whichever saved it). `disks` replaces the saved disks' paths (in order); a disk whose
        size or modification time changed since the snapshot is refused unless `force`."""
        from .snapshot.load import open_snapshot
        snapshot = open_snapshot(path, disks=disks, force=force)
        config = snapshot.config(accel=accel, serial=serial, timeout=timeout, idle=idle, stdin=stdin)
        return cls(config, debug, snapshot=snapshot)

    def _parse_kernel(self, data: bytes):
        if self.kernel_format == BZIMAGE:
            from .loader.bzimage import BzImage
            return BzImage(data)
        if self.kernel_format == MULTIBOOT:
            from .loader.multiboot import MultibootImage
            return MultibootImage(data)
        return ElfImage(data, "kernel")

    def _cmdline(self, virtio_params) -> str:
        """A Linux kernel finds the virtio devices through ACPI and gets Linux's defaults;
        the others are told about the devices on the command line (virtio_mmio.device=)."""
        if self.kernel_format == BZIMAGE:
            return self.config.full_cmdline(default=LINUX_CMDLINE)
        return self.config.full_cmdline(virtio_params)

    def _write_acpi_tables(self) -> int:
        blob, rsdp = acpi_tables(self.virtio_slots)
        self.memory.write(layout.ACPI_TABLES_START, blob)
        return rsdp

    def _irq(self, gsi: int) -> DeferredLine:
        line = self.irq_lines[gsi] = DeferredLine(gsi)
        return line

    def _add_virtio_devices(self) -> list:
        """The virtio-mmio devices, one per slot: the disks in order (vda, vdb, ...), then
        entropy and the console. Returns the kernel parameters that announce them, in
        Linux's own syntax, so the same kernel also finds QEMU microvm's devices."""
        devices = []
        if self.config.disks:
            from .devices.virtio.blk import VirtioBlock
        for disk in self.config.disks:
            block = VirtioBlock(disk.path, read_only=disk.read_only)
            self._cleanup.callback(block.close)
            devices.append(block)
        devices.append(VirtioRng())
        self.virtio_console = VirtioConsole(output=self.serial.write)
        devices.append(self.virtio_console)
        if len(devices) > len(layout.VIRTIO_MMIO_IRQS):
            raise UsageError(f"at most {len(layout.VIRTIO_MMIO_IRQS) - 2} disks fit the virtio-mmio slots")
        params = []
        self.virtio_slots = []
        self.virtio_transports = []
        for slot, (device, gsi) in enumerate(zip(devices, layout.VIRTIO_MMIO_IRQS)):
            base = layout.VIRTIO_MMIO_BASE + slot * layout.VIRTIO_MMIO_SLOT_SIZE
            transport = MmioTransport(device, self.memory, irq=self._irq(gsi))
            self.virtio_transports.append(transport)
            self.mmio.register(base, layout.VIRTIO_MMIO_SLOT_SIZE, transport)
            params.append(f"virtio_mmio.device={layout.VIRTIO_MMIO_SLOT_SIZE // layout.KiB}K@{base:#x}:{gsi}")
            self.virtio_slots.append((base, layout.VIRTIO_MMIO_SLOT_SIZE, gsi))
        return params

    def _boot_through_firmware(self, kernel, module, cmdline):
        """Map the firmware below 4 GiB with its last 64 KiB shadowed at 0xF0000, give it
        the kernel through fw_cfg as QEMU does, and start the CPU from the reset vector."""
        from .arch.x86.cpuid import FAMILY_MODEL_STEPPING
        from .arch.x86.reset import reset_state
        from .devices.fw_cfg import FwCfg
        image = read_input(self.config.firmware, "firmware", layout.FIRMWARE_MAX_SIZE,
                           f"the {layout.FIRMWARE_MAX_SIZE // layout.KiB} KiB the firmware may have")
        check_firmware_image(self.config.firmware, image)
        self.memory.add_rom(layout.FIRMWARE_TOP - len(image), image)
        self.memory.write(layout.BIOS_SHADOW_START, image[-layout.BIOS_SHADOW_SIZE:])
        self.fw_cfg = FwCfg.for_pvh_boot(self.memory, kernel, module, cmdline, dma=self.config.fw_cfg_dma)
        self.fw_cfg.register(self.ports)
        return reset_state(FAMILY_MODEL_STEPPING)

    def _output_failed(self, detail: str) -> None:
        """The serial output cannot be written: end the run rather than lose it silently."""
        self.control.request_stop(Outcome(OUTPUT_ERROR, detail=detail))

    def send_input(self, data: bytes) -> None:
        """Bytes for the guest's serial port; callable from any thread while the VM runs."""
        self.uart.feed(data)

    def stop(self, detail: str, status: int = SIGINT_STATUS) -> None:
        """End the run from outside (any thread): the engine returns an INTERRUPTED outcome,
        and `vmm run` exits with `status` (128 + the signal's number, as a shell reports it).
        A paused VM stops too."""
        self.control.request_stop(Outcome(INTERRUPTED, status=status, detail=detail))
        self.gate.wake()

    def run(self) -> RunResult:
        """Run the VM until it ends (one run at a time)."""
        if not self._running.acquire(blocking=False):
            raise VmmError("Machine.run() is already running in another thread")
        try:
            if self._closed:
                raise VmmError("Machine.run() after close()")
            self._run_thread = threading.current_thread()
            return self._run()
        finally:
            self._run_thread = None
            self._running.release()

    def _run(self) -> RunResult:
        started = time.monotonic()
        try:
            outcome = self._run_engine()
        except KeyboardInterrupt:
            outcome = Outcome(INTERRUPTED, detail="interrupted by SIGINT")
        self.gate.run_ended(outcome)
        ended = time.monotonic()
        cpu_report = ""
        if outcome.reason in CRASHES or outcome.reason == TIMEOUT:
            cpu_report = self._cpu_report()
        self.debug.close(outcome)
        if self.debug.output_error and outcome.reason not in CRASHES | {TIMEOUT, OUTPUT_ERROR}:
            outcome = Outcome(OUTPUT_ERROR, detail=self.debug.output_error)    # (a trace's last write)
        return RunResult(
            reason=outcome.reason, status=outcome.status, detail=outcome.detail,
            serial=bytes(self.serial.captured), engine=self.engine.name,
            stats=self._stats(started, ended), cpu_report=cpu_report)

    def _run_engine(self) -> Outcome:
        """The engine runs until the VM ends; a pause (Outcome PAUSED) parks this thread in
        the gate until resume(), and the time spent paused does not count to the timeout."""
        timeout, active = self.config.timeout, 0.0
        self.gate.run_started()
        while True:
            self.gate.park_if_paused()
            remaining = None if timeout is None else max(timeout - active, 0.001)
            began = time.monotonic()
            outcome = self.debug.run(self.engine, remaining)
            active += time.monotonic() - began
            if outcome.reason != PAUSED:
                return outcome

    # --- pausing (outcome.PauseGate) and snapshots (vmm/snapshot), from any thread -------------------------
    def pause(self) -> None:
        """Stop the vCPU at an instruction boundary and keep it there, its clock stopped, until
        resume(); returns once it has stopped. VmmError if the VM has ended."""
        if self.debug.gdb_server is not None:
            raise UsageError("a VM under --gdb is paused from gdb, not with pause()")
        self.gate.pause()

    def resume(self) -> None:
        self.gate.resume()

    @property
    def paused(self) -> bool:
        return self.gate.paused

    def snapshot(self, path: str, full: bool = False):
        """Save the VM into directory `path` (created; it must not exist, or be an empty
        directory); pauses for the time it takes and resumes unless it was paused already.
        With dirty tracking (track_dirty_pages), the snapshots after the first write only
        the pages changed since the one before (diffs), unless `full`. Returns a
        vmm.snapshot.save.SavedSnapshot (path, bytes written, seconds)."""
        from .snapshot.save import Snapshots
        if self._snapshots is None:
            self._snapshots = Snapshots(self)
        return self._snapshots.take(path, full=full)

    def track_dirty_pages(self) -> None:
        """Keep KVM's dirty-page log from now on, so that later snapshots are diffs (the
        CLI's --snapshot-dirty); VmmError on an engine without one."""
        from .snapshot.save import Snapshots
        if self._snapshots is None:
            self._snapshots = Snapshots(self)
        self._snapshots.track_dirty_pages()

    def _stats(self, started: float, ended: float) -> dict:
        first = self.serial.first_byte_time
        return {
            "engine": self.engine.name,
            "engine_choice": self.accel_note,
            "kernel_format": self.kernel_format,
            "cmdline": self.cmdline,
            "exits": self.engine.exit_counts(),
            "unclaimed": {"port_reads": self.ports.unclaimed_reads, "port_writes": self.ports.unclaimed_writes,
                          "mmio_reads": self.mmio.unclaimed_reads, "mmio_writes": self.mmio.unclaimed_writes},
            "serial_bytes": self.serial.total_bytes,
            "setup_seconds": self.ready - self.created,
            "engine_seconds": self.engine_seconds,      # of setup_seconds: importing and probing the engine
            "first_serial_byte_seconds": None if first is None else first - self.created,
            "total_seconds": ended - self.created,
            "run_seconds": ended - started,
            "exit_histogram": self.debug.histogram_dict(),
            "exit_histogram_text": self.debug.histogram_text(self.ports, self.mmio),
        }

    def _cpu_report(self) -> str:
        return self.debug.crash_report(self.engine.debug())     # (never raises)

    def close(self) -> None:
        """Release everything. A run going on in another thread is stopped first (it returns
        an INTERRUPTED result there), so that nothing is freed under a running vCPU."""
        if self._run_thread is threading.current_thread():
            raise VmmError("Machine.close() from inside its own run(): call stop() instead")
        if not self._running.acquire(blocking=False):
            self.stop("the machine was closed while it ran")
            if not self._running.acquire(timeout=CLOSE_WAIT):
                raise VmmError(f"Machine.close(): the run in another thread did not stop within {CLOSE_WAIT:g} s")
        try:
            self._closed = True
            if getattr(self, "_snapshots", None) is not None:
                self._snapshots.close()
            self._cleanup.close()
        finally:
            self._running.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
