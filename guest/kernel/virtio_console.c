/*
 * virtio-console (virtio 1.2 section 5.3), port 0 only (no MULTIPORT), and
 * only its transmitq: /dev/hvc0 is write-only here.  A write posts the user's
 * buffer itself, in pieces of up to a queue's worth of descriptors.
 */
#include "kernel.h"
#include "virtio.h"

static struct phys_seg segs[VIRTQ_MAX_SIZE];

long virtio_console_open(struct virtio_dev **out)
{
    return virtio_open(VIRTIO_ID_CONSOLE, 0, 0, VIRTIO_CONSOLE_TRANSMITQ, out);
}

long virtio_console_write(struct virtio_dev *d, uint64_t buf, uint64_t count)
{
    uint64_t done = 0;
    while (done < count) {
        int nseg;
        uint64_t n = user_dma_map(buf + done, count - done, 0, segs, d->q.size, &nseg);
        if (!n)
            return done ? (long)done : -EFAULT;
        for (int i = 0; i < nseg; i++)
            virtq_desc_set(d, i, segs[i].pa, (uint32_t)segs[i].len, 0, i == nseg - 1);
        long r = virtio_request(d, nseg);
        if (r < 0)
            return done ? (long)done : r;
        done += n;
    }
    return (long)done;
}
