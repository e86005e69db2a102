"""virtio devices over the MMIO transport (virtio 1.2: 4.2 MMIO, 2.7 split virtqueues).

One job per module:
  device.py   what a device model gives the transport; feature bits common to every device
  queue.py    the split virtqueue, walked from the device side (safe against a hostile guest)
  mmio.py     the virtio-mmio version 2 register file, status state machine and interrupt
  blk.py      virtio-blk backed by a host file (5.2)
  rng.py      virtio-rng (5.4)
  console.py  virtio-console, one port (5.3)

A machine wires one device to one slot:
    dev = VirtioBlock(path, read_only=False)
    transport = MmioTransport(dev, memory, irq=line_setter)
    mmio_bus.register(VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SLOT_SIZE, VIRTIO_MMIO_SLOT_SIZE, transport)
"""
_EXPORTS = {"VirtioBlock": "blk", "VirtioConsole": "console", "MmioTransport": "mmio", "VirtioRng": "rng"}


def __getattr__(name):
    """The device classes, each imported on first use (a VM without a disk never loads blk.py)."""
    if name in _EXPORTS:
        import importlib
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MmioTransport", "VirtioBlock", "VirtioConsole", "VirtioRng"]
