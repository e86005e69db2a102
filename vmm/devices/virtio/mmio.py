"""The virtio-mmio transport, version 2 (virtio 1.2 section 4.2): one device's register file.

The machine registers an MmioTransport on the MMIO bus for one 4 KiB slot; the bus calls
read/write with offsets relative to the slot. Control registers are 32-bit: an access of
another width, a misaligned one, or one to an offset the table does not define reads 0 and
writes nothing, and never raises (the guest must not be able to crash the VMM). The device
configuration space at 0x100 takes any width at any offset.

Status follows the spec's initialisation sequence (3.1.1): ACKNOWLEDGE, DRIVER, FEATURES_OK
(refused unless the driver's features are a subset of the device's and include VERSION_1),
DRIVER_OK. The driver never clears bits (only writing 0, a reset, does); a bit whose
predecessor is missing is ignored. The device sets DEVICE_NEEDS_RESET when the driver breaks
a queue, and then stops touching the queues until reset.

The interrupt line is level-triggered in spirit: `irq(True)` when InterruptStatus becomes
non-zero, `irq(False)` when the driver's InterruptACK clears it. It is called with the
transport's lock held, and not only from vCPU threads (console input arrives on the host's
input thread), so it must be thread-safe and must not wait for a vCPU.

Requests are served synchronously, on the thread that writes QueueNotify.
"""
import threading

from ...errors import GuestMemoryError
from .device import VIRTIO_F_EVENT_IDX, VIRTIO_F_INDIRECT_DESC, VIRTIO_F_VERSION_1
from .queue import QueueError, Virtqueue

# Register offsets (4.2.2, table "MMIO Device Register Layout"); names as in Linux's virtio_mmio.h.
MAGIC_VALUE = 0x000             # R
VERSION = 0x004                 # R
DEVICE_ID = 0x008               # R
VENDOR_ID = 0x00C               # R
DEVICE_FEATURES = 0x010         # R: 32 bits of the device features, selected by ...
DEVICE_FEATURES_SEL = 0x014     # W
DRIVER_FEATURES = 0x020         # W
DRIVER_FEATURES_SEL = 0x024     # W
QUEUE_SEL = 0x030               # W: the queue the QUEUE_* registers below refer to
QUEUE_NUM_MAX = 0x034           # R
QUEUE_NUM = 0x038               # W
QUEUE_READY = 0x044             # RW
QUEUE_NOTIFY = 0x050            # W: the index of a queue with new buffers
INTERRUPT_STATUS = 0x060        # R
INTERRUPT_ACK = 0x064           # W
STATUS = 0x070                  # RW
QUEUE_DESC_LOW = 0x080          # W: descriptor table
QUEUE_DESC_HIGH = 0x084
QUEUE_DRIVER_LOW = 0x090        # W: available ring ("driver area")
QUEUE_DRIVER_HIGH = 0x094
QUEUE_DEVICE_LOW = 0x0A0        # W: used ring ("device area")
QUEUE_DEVICE_HIGH = 0x0A4
SHM_SEL = 0x0AC                 # W: shared memory regions; we have none
SHM_LEN_LOW = 0x0B0             # R
SHM_LEN_HIGH = 0x0B4
SHM_BASE_LOW = 0x0B8            # R
SHM_BASE_HIGH = 0x0BC
CONFIG_GENERATION = 0x0FC       # R
CONFIG = 0x100                  # device-specific configuration space

MAGIC = 0x74726976              # "virt", little-endian
MMIO_VERSION = 2                # the non-legacy interface
VENDOR = 0x4D565950             # "PYVM", little-endian (QEMU uses "QEMU", kvmtool "LKVM")
NO_SHM_REGION = 0xFFFF_FFFF     # both halves of -1: "reading a non-existent region results in -1"

# Device status bits (2.1).
ACKNOWLEDGE = 1
DRIVER = 2
DRIVER_OK = 4
FEATURES_OK = 8
DEVICE_NEEDS_RESET = 64
FAILED = 128
DRIVER_STATUS_BITS = ACKNOWLEDGE | DRIVER | DRIVER_OK | FEATURES_OK | FAILED

# InterruptStatus bits (4.2.2).
INT_USED_BUFFER = 1
INT_CONFIG_CHANGE = 2

# The queue registers that carry a 64-bit address half: (attribute, shift).
QUEUE_ADDRESS_REGISTERS = {
    QUEUE_DESC_LOW: ("desc_addr", 0), QUEUE_DESC_HIGH: ("desc_addr", 32),
    QUEUE_DRIVER_LOW: ("avail_addr", 0), QUEUE_DRIVER_HIGH: ("avail_addr", 32),
    QUEUE_DEVICE_LOW: ("used_addr", 0), QUEUE_DEVICE_HIGH: ("used_addr", 32),
}
U32 = 0xFFFF_FFFF


class MmioTransport:
    def __init__(self, device, memory, irq=None):
        """`device` a VirtioDevice, `memory` the GuestMemory its queues live in, `irq(level)`
        drives the slot's interrupt line."""
        self.device = device
        self.memory = memory
        self._irq = irq or (lambda level: None)
        # Register accesses come from vCPU threads, host input (console feed) from another
        # thread: one lock serialises everything that touches the queues or the status.
        self.lock = threading.RLock()
        self.queues = [Virtqueue(memory, size) for size in device.queue_max_sizes]
        self.config_generation = 0
        self.error = None               # why DEVICE_NEEDS_RESET was set (for diagnostics)
        self._irq_level = False
        device.transport = self
        self._reset()

    # --- guest side: the bus calls these -------------------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if offset >= CONFIG:
            return self._read_config(offset - CONFIG, size)
        if size != 4 or offset & 3:
            return 0
        with self.lock:
            return self._read_register(offset)

    def write(self, offset: int, size: int, value: int) -> None:
        if offset >= CONFIG:
            if size in (1, 2, 4, 8):
                with self.lock:
                    self.device.write_config(offset - CONFIG, size, value)
            return
        if size != 4 or offset & 3:
            return
        with self.lock:
            self._write_register(offset, value & U32)

    # --- snapshots (devices/state.py) -----------------------------------------------------------
    STATE_VERSION = 1
    _STATE_FIELDS = ("status", "device_features_sel", "driver_features_sel", "driver_features", "features",
                     "queue_sel", "interrupt_status", "config_generation", "_irq_level")

    def save_state(self) -> dict:
        from ..state import pick
        with self.lock:
            return dict(pick(self, self._STATE_FIELDS), device_id=self.device.device_id, error=self.error,
                        queues=[queue.save_state() for queue in self.queues], device=self.device.save_state())

    def load_state(self, state: dict) -> None:
        """Registers, queues and the device's own state as saved; nothing is re-negotiated
        and the device is not activated again (its driver is past that)."""
        from ..state import StateError, need, put
        with self.lock:
            if need(state, "device_id", int, "virtio") != self.device.device_id:
                raise StateError(f"virtio: a device of type {state['device_id']} was saved in the slot "
                                 f"of a type {self.device.device_id}")
            queues = need(state, "queues", list, "virtio")
            if len(queues) != len(self.queues):
                raise StateError(f"virtio: {len(queues)} queues saved for a device with {len(self.queues)}")
            put(self, state, self._STATE_FIELDS)
            self.error = state.get("error") if isinstance(state.get("error"), str) else None
            for queue, queue_state in zip(self.queues, queues):
                queue.load_state(queue_state)
            self.device.load_state(need(state, "device", dict, "virtio"))

    # --- host side ---------------------------------------------------------------------------
    @property
    def driver_ok(self) -> bool:
        """Whether the device may use its queues: DRIVER_OK set and not broken."""
        return self.status & (DRIVER_OK | DEVICE_NEEDS_RESET) == DRIVER_OK

    def kick(self, index: int) -> None:
        """Serve queue `index` as if the driver had notified it (host-side events, such as
        console input arriving). Safe from any thread."""
        with self.lock:
            self._notify(index)

    def signal_used(self, queue) -> None:
        """The device added used buffers to `queue`: interrupt the driver if it wants one."""
        if queue.should_interrupt():
            self._raise_interrupt(INT_USED_BUFFER)

    def config_changed(self) -> None:
        """The device changed its configuration space (2.5.1: new generation, notify)."""
        with self.lock:
            self.config_generation = (self.config_generation + 1) & U32
            if self.status & DRIVER_OK:
                self._raise_interrupt(INT_CONFIG_CHANGE)

    def needs_reset(self, reason: str) -> None:
        """Enter the error state (2.1.1): DEVICE_NEEDS_RESET, and a configuration change
        notification once the driver is running. Queues are left alone until a reset."""
        with self.lock:
            if self.error is None:
                self.error = reason
            self.status |= DEVICE_NEEDS_RESET
            if self.status & DRIVER_OK:
                self._raise_interrupt(INT_CONFIG_CHANGE)

    # --- registers -----------------------------------------------------------------------------
    def _selected_queue(self):
        return self.queues[self.queue_sel] if self.queue_sel < len(self.queues) else None

    def _read_register(self, offset: int) -> int:
        if offset == MAGIC_VALUE:
            return MAGIC
        if offset == VERSION:
            return MMIO_VERSION
        if offset == DEVICE_ID:
            return self.device.device_id
        if offset == VENDOR_ID:
            return VENDOR
        if offset == DEVICE_FEATURES:
            if self.device_features_sel >= 2:
                return 0                # feature bits above 63 do not exist yet
            return (self.device.features >> (32 * self.device_features_sel)) & U32
        if offset == QUEUE_NUM_MAX:
            queue = self._selected_queue()
            return queue.max_size if queue else 0      # 0: "the queue is not available"
        if offset == QUEUE_READY:
            queue = self._selected_queue()
            return int(queue.ready) if queue else 0
        if offset == INTERRUPT_STATUS:
            return self.interrupt_status
        if offset == STATUS:
            return self.status
        if SHM_LEN_LOW <= offset <= SHM_BASE_HIGH:
            return NO_SHM_REGION
        if offset == CONFIG_GENERATION:
            return self.config_generation
        return 0                        # write-only or undefined

    def _write_register(self, offset: int, value: int) -> None:
        if offset == DEVICE_FEATURES_SEL:
            self.device_features_sel = value
        elif offset == DRIVER_FEATURES:
            # Features are frozen once FEATURES_OK is accepted (3.1.1 step 5).
            if self.driver_features_sel < 2 and not self.status & FEATURES_OK:
                shift = 32 * self.driver_features_sel
                self.driver_features = (self.driver_features & ~(U32 << shift)) | (value << shift)
        elif offset == DRIVER_FEATURES_SEL:
            self.driver_features_sel = value
        elif offset == QUEUE_SEL:
            self.queue_sel = value
        elif offset == QUEUE_NUM:
            queue = self._selected_queue()
            if queue and not queue.ready:          # checked when the queue is enabled
                queue.size = value
        elif offset == QUEUE_READY:
            self._write_queue_ready(value)
        elif offset == QUEUE_NOTIFY:
            self._notify(value)
        elif offset == INTERRUPT_ACK:
            self.interrupt_status &= ~value
            self._update_irq()
        elif offset == STATUS:
            self._write_status(value & 0xFF)
        elif offset in QUEUE_ADDRESS_REGISTERS:
            queue = self._selected_queue()
            if queue and not queue.ready:          # "MUST NOT access ... when QueueReady is not zero"
                name, shift = QUEUE_ADDRESS_REGISTERS[offset]
                setattr(queue, name, (getattr(queue, name) & ~(U32 << shift)) | (value << shift))
        # SHM_SEL: no regions to select. Read-only and undefined registers: ignored.

    def _write_queue_ready(self, value: int) -> None:
        queue = self._selected_queue()
        if queue is None:
            return
        if not value & 1:
            queue.disable()
        elif not queue.ready:
            problem = queue.enable(*self._queue_features())
            if problem is not None:
                # The Linux driver never reads QueueReady back after setting it: without
                # DEVICE_NEEDS_RESET it would wait forever on a queue we will never serve.
                self.needs_reset(f"queue {self.queue_sel}: {problem}")

    def _queue_features(self):
        return bool(self.features & VIRTIO_F_EVENT_IDX), bool(self.features & VIRTIO_F_INDIRECT_DESC)

    def _write_status(self, value: int) -> None:
        if value == 0:
            self._reset()
            return
        old = self.status
        new = old | (value & DRIVER_STATUS_BITS)
        # Each step of 3.1.1 needs the one before it; a step out of order is ignored.
        if not new & ACKNOWLEDGE:
            new &= ~DRIVER
        if not new & DRIVER:
            new &= ~FEATURES_OK
        if new & FEATURES_OK and not old & FEATURES_OK and not self._accept_features():
            new &= ~FEATURES_OK         # the driver reads the status back and sees the refusal
        if not new & FEATURES_OK:
            new &= ~DRIVER_OK
        self.status = new
        if new & DRIVER_OK and not old & DRIVER_OK:
            if new & DEVICE_NEEDS_RESET:
                self._raise_interrupt(INT_CONFIG_CHANGE)   # broken during setup: tell the driver now
            else:
                self._guarded(self.device.activate)

    def _accept_features(self) -> bool:
        wanted = self.driver_features
        if wanted & ~self.device.features or not wanted & VIRTIO_F_VERSION_1:
            return False
        self.features = wanted
        for queue in self.queues:
            queue.set_features(*self._queue_features())
        return True

    def _notify(self, index: int) -> None:
        # Without VIRTIO_F_NOTIFICATION_DATA the value is just the queue index.
        if not self.driver_ok or index >= len(self.queues) or not self.queues[index].ready:
            return                      # not running, no such queue, or not ready: ignored
        self._guarded(self.device.process, index)

    def _guarded(self, action, *args) -> None:
        """Run device code; a guest that broke a queue sets DEVICE_NEEDS_RESET, never an exception."""
        try:
            action(*args)
        except (QueueError, GuestMemoryError) as err:
            self.needs_reset(str(err))

    # --- configuration space ---------------------------------------------------------------------
    def _read_config(self, offset: int, size: int) -> int:
        # Bytes past the end of the configuration space read as zero.
        return int.from_bytes(self.device.config[offset:offset + size], "little")

    # --- interrupt and reset -----------------------------------------------------------------------
    def _raise_interrupt(self, bits: int) -> None:
        self.interrupt_status |= bits
        self._update_irq()

    def _update_irq(self) -> None:
        level = self.interrupt_status != 0
        if level != self._irq_level:
            self._irq_level = level
            self._irq(level)

    def _reset(self) -> None:
        """Status 0 (and construction): every register and queue back to its initial state."""
        self.status = 0
        self.device_features_sel = 0
        self.driver_features_sel = 0
        self.driver_features = 0
        self.features = 0               # negotiated: valid once FEATURES_OK was accepted
        self.queue_sel = 0
        self.interrupt_status = 0
        self.error = None
        for queue in self.queues:
            queue.reset()
        self._update_irq()
        self.device.reset()
