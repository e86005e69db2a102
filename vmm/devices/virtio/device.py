"""What a virtio device model gives the transport, and the feature bits every device shares.

A device model knows its type (device ID, queues, feature bits, configuration space) and how
to serve a request; it knows nothing of MMIO registers. The transport (mmio.py) owns the
queues and the interrupt, and calls the device back:
    activate()        the driver set DRIVER_OK: queues may be used from now on
    reset()           the driver wrote 0 to Status
    process(index)    queue `index` was notified (by the guest, or by the host via kick())
    write_config(offset, size, value)   a driver write into the configuration space
The device reaches back through `self.transport` (set when the transport is built).
"""

# Reserved feature bits (virtio 1.2 section 6). Only these three are offered: no legacy
# interface, no packed ring, no IOMMU (ACCESS_PLATFORM) and no notification data.
VIRTIO_F_INDIRECT_DESC = 1 << 28
VIRTIO_F_EVENT_IDX = 1 << 29
VIRTIO_F_VERSION_1 = 1 << 32
COMMON_FEATURES = VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC | VIRTIO_F_EVENT_IDX

# Device IDs (virtio 1.2 section 5).
DEVICE_ID_BLOCK = 2
DEVICE_ID_CONSOLE = 3
DEVICE_ID_ENTROPY = 4


class VirtioDevice:
    device_id = 0
    queue_max_sizes = ()        # one entry per queue: its QueueNumMax (a power of two)

    def __init__(self, features: int = 0, config: bytes = b""):
        self.features = COMMON_FEATURES | features    # offered to the driver (DeviceFeatures)
        self.config = config                          # device-specific configuration space
        self.transport = None

    @property
    def memory(self):
        return self.transport.memory

    # --- called by the transport -------------------------------------------------------------
    def activate(self) -> None:
        pass

    def reset(self) -> None:
        pass

    def process(self, index: int) -> None:
        pass

    def write_config(self, offset: int, size: int, value: int) -> None:
        pass                    # read-only configuration space by default

    # --- snapshots: what the device keeps beyond its queues (the transport saves those) --------
    def save_state(self) -> dict:
        return {}

    def load_state(self, state: dict) -> None:
        pass

    # --- helper for devices ------------------------------------------------------------------
    def serve(self, index: int, handle) -> None:
        """Complete every available chain of queue `index` with `handle(chain) -> bytes
        written`, then interrupt the driver if it asked for it. A broken ring raises
        QueueError out of pop(); the transport turns it into DEVICE_NEEDS_RESET."""
        queue = self.transport.queues[index]
        try:
            while (chain := queue.pop()) is not None:
                queue.add_used(chain.head, handle(chain))
        finally:
            self.transport.signal_used(queue)
