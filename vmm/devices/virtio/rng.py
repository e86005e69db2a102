"""virtio-rng, the entropy device (virtio 1.2 section 5.4): one queue of writable buffers,
each filled from the host's os.urandom."""
import os

from .device import DEVICE_ID_ENTROPY, VirtioDevice

QUEUE_SIZE = 256
# "The device MAY use less than the entire buffer length" (5.4.6.1): a guest that posts a
# 1 GiB buffer gets 64 KiB, and the vCPU is not held up generating the rest.
MAX_BYTES_PER_REQUEST = 64 * 1024


class VirtioRng(VirtioDevice):
    device_id = DEVICE_ID_ENTROPY
    queue_max_sizes = (QUEUE_SIZE,)

    def process(self, index: int) -> None:
        self.serve(index, self._fill)

    def _fill(self, chain) -> int:
        if chain.error is not None:
            return 0
        written = 0
        for gpa, length in chain.writable:
            n = min(length, MAX_BYTES_PER_REQUEST - written)
            if n <= 0:
                break
            self.memory.write(gpa, os.urandom(n))   # write() tells the engines (wrote)
            written += n
        return written
