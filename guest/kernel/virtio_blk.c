/*
 * virtio-blk (virtio 1.2 section 5.2): IN, OUT, FLUSH and GET_ID, one request
 * at a time.  A request is the chain
 *
 *     header {type, reserved, sector}  (device-readable, scratch page)
 *     the user's buffer, piece by piece (device-writable for IN)
 *     status byte                      (device-writable, scratch page)
 *
 * The data moves straight between the disk and the user's pages (physical
 * addresses from a page-table walk, user_dma_map): no bounce buffer, no copy
 * in ring 0.  Offsets and lengths must be multiples of 512 (Linux would
 * also take unaligned ones, through its page cache): else -EINVAL.  As on
 * Linux, a read that reaches past the end is cut short (0 at the end) and a
 * write there fails with -ENOSPC.  A read-only disk (VIRTIO_BLK_F_RO) still
 * gets the OUT request; the device's IOERR answer becomes -EIO.
 */
#include "kernel.h"
#include "virtio.h"

#define WANTED ((1ull << VIRTIO_BLK_F_RO) | (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_SEG_MAX))

static struct phys_seg segs[VIRTQ_MAX_SIZE];    /* one request at a time */

/* The header and status descriptors never change: written once, at the two
 * ends of the table (0 and size - 1); a request writes only its data pieces
 * in between, the last one pointing at the status descriptor. */
static void blk_fixed_descriptors(struct virtio_dev *d)
{
    uint64_t s_pa = d->q.pa + VIRTQ_SCRATCH_OFFSET;
    virtq_desc_set(d, 0, s_pa, 16, 0, 0);
    virtq_desc_set(d, d->q.size - 1, s_pa + __builtin_offsetof(struct blk_scratch, status), 1,
                   VIRTQ_DESC_F_WRITE, 1);
}

long virtio_blk_open(int index, struct virtio_dev **out)
{
    struct virtio_dev *d;
    long r = virtio_open(VIRTIO_ID_BLOCK, index, WANTED, 0, &d);
    if (r < 0)
        return r;
    if (!d->max_segs) {                 /* first open: read the configuration */
        d->capacity = virtio_config32(d, VIRTIO_BLK_CFG_CAPACITY) |
                      (uint64_t)virtio_config32(d, VIRTIO_BLK_CFG_CAPACITY + 4) << 32;
        d->max_segs = d->q.size - 2;    /* header and status take two */
        if (d->features & (1ull << VIRTIO_BLK_F_SEG_MAX)) {
            uint32_t seg_max = virtio_config32(d, VIRTIO_BLK_CFG_SEG_MAX);
            if (seg_max && seg_max < d->max_segs)
                d->max_segs = seg_max;
        }
        ((struct blk_scratch *)d->q.scratch)->reserved = 0;
        blk_fixed_descriptors(d);
    }
    *out = d;
    return 0;
}

int virtio_blk_read_only(struct virtio_dev *d)
{
    return (d->features >> VIRTIO_BLK_F_RO) & 1;
}

/* One request with `nseg` data pieces in segs[]; 0 or -errno. */
static long blk_request(struct virtio_dev *d, uint32_t type, uint64_t sector, int nseg, uint16_t data_flags)
{
    struct blk_scratch *s = d->q.scratch;
    struct virtq_desc *desc = d->q.desc;
    s->type = type;
    s->sector = sector;
    s->status = 0xff;                   /* a device that writes nothing has failed */
    data_flags |= VIRTQ_DESC_F_NEXT;
    desc[0].next = 1;
    for (int i = 1; i <= nseg; i++, desc++) {
        desc[1].addr = segs[i - 1].pa;
        desc[1].len = (uint32_t)segs[i - 1].len;
        desc[1].flags = data_flags;
        desc[1].next = (uint16_t)(i + 1);
    }
    desc->next = d->q.size - 1;         /* the last data piece (or the header) -> status */
    long r = virtio_request(d, nseg + 2);
    if (r < 0)
        return r;
    if (s->status == VIRTIO_BLK_S_OK)
        return 0;
    return s->status == VIRTIO_BLK_S_UNSUPP ? -EOPNOTSUPP : -EIO;
}

long virtio_blk_rw(struct virtio_dev *d, int write, uint64_t buf, uint64_t count, int64_t offset)
{
    if (offset < 0 || offset % SECTOR_SIZE || count % SECTOR_SIZE)
        return -EINVAL;
    uint64_t size = d->capacity * SECTOR_SIZE;
    if ((uint64_t)offset >= size)
        return write && count ? -ENOSPC : 0;
    count = MIN(count, size - (uint64_t)offset);
    uint64_t done = 0;
    while (done < count) {
        int nseg;
        uint64_t n = user_dma_map(buf + done, MIN(count - done, VIRTIO_BLK_MAX_REQUEST), !write,
                                  segs, (int)d->max_segs, &nseg);
        uint64_t excess = n % SECTOR_SIZE;  /* whole sectors only: trim the tail */
        n -= excess;
        while (excess) {
            uint64_t cut = MIN(excess, segs[nseg - 1].len);
            segs[nseg - 1].len -= cut;
            excess -= cut;
            if (!segs[nseg - 1].len)
                nseg--;
        }
        if (!n)
            return done ? (long)done : -EFAULT;
        long r = blk_request(d, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN,
                             ((uint64_t)offset + done) / SECTOR_SIZE, nseg,
                             write ? 0 : VIRTQ_DESC_F_WRITE);
        if (r < 0)
            return done ? (long)done : r;
        done += n;
    }
    return (long)done;
}

long virtio_blk_flush(struct virtio_dev *d)
{
    if (!(d->features & (1ull << VIRTIO_BLK_F_FLUSH)))
        return 0;                       /* no write cache to flush */
    return blk_request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
}

long virtio_blk_id(struct virtio_dev *d, char id[VIRTIO_BLK_ID_BYTES])
{
    struct blk_scratch *s = d->q.scratch;
    segs[0].pa = d->q.pa + VIRTQ_SCRATCH_OFFSET + __builtin_offsetof(struct blk_scratch, id);
    segs[0].len = VIRTIO_BLK_ID_BYTES;
    memset(s->id, 0, VIRTIO_BLK_ID_BYTES);
    long r = blk_request(d, VIRTIO_BLK_T_GET_ID, 0, 1, VIRTQ_DESC_F_WRITE);
    if (r < 0)
        return r;
    memcpy(id, s->id, VIRTIO_BLK_ID_BYTES);
    return 0;
}
