/*
 * virtio-rng (virtio 1.2 section 5.4): one queue of device-writable buffers.
 * A read posts the user's buffer itself (user_dma_map: no copy) and returns
 * what the device wrote, which may be less than asked (our VMM gives at most
 * 64 KiB per request), as Linux's /dev/hwrng may.
 */
#include "kernel.h"
#include "virtio.h"

/* The most one read asks for: a request's worth on our VMM. */
#define RNG_MAX_REQUEST 0x10000

static struct phys_seg segs[VIRTQ_MAX_SIZE];

long virtio_rng_open(struct virtio_dev **out)
{
    return virtio_open(VIRTIO_ID_RNG, 0, 0, 0, out);
}

long virtio_rng_read(struct virtio_dev *d, uint64_t buf, uint64_t count)
{
    int nseg;
    if (!count)
        return 0;
    if (!user_dma_map(buf, MIN(count, RNG_MAX_REQUEST), 1, segs, d->q.size, &nseg))
        return -EFAULT;
    for (int i = 0; i < nseg; i++)
        virtq_desc_set(d, i, segs[i].pa, (uint32_t)segs[i].len, VIRTQ_DESC_F_WRITE, i == nseg - 1);
    return virtio_request(d, nseg);
}
