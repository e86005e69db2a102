/* virtio over MMIO: the transport (virtio_mmio.c) and the device drivers
 * built on it (virtio_blk.c, virtio_rng.c, virtio_console.c). */
#ifndef VIRTIO_H
#define VIRTIO_H
#include <stddef.h>
#include <stdint.h>
#include "layout.h"
#include "mm/mm.h"
#include "uapi.h"

/* The split virtqueue (virtio 1.2, 2.7), all in one page: descriptors at 0,
 * the available ring at VIRTQ_AVAIL_OFFSET, the used ring at
 * VIRTQ_USED_OFFSET, the drivers' request scratch at VIRTQ_SCRATCH_OFFSET. */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags, next;
};

struct virtq_avail {
    uint16_t flags, idx;
    uint16_t ring[];
};

struct virtq_used_elem {
    uint32_t id, len;
};

struct virtq_used {
    uint16_t flags, idx;
    struct virtq_used_elem ring[];
};

/* What virtio-blk puts in the scratch area: the request header, the status
 * byte, the GET_ID answer. */
struct blk_scratch {
    uint32_t type, reserved;
    uint64_t sector;
    uint8_t status;
    uint8_t pad[15];
    char id[VIRTIO_BLK_ID_BYTES];
};

struct virtq {
    uint16_t size;              /* QueueNum: a power of two <= VIRTQ_MAX_SIZE */
    uint16_t avail_idx;         /* the next available index we publish */
    uint16_t last_used;         /* the used index we have consumed up to */
    uint64_t pa;                /* the page */
    struct virtq_desc *desc;
    volatile struct virtq_avail *avail;
    volatile struct virtq_used *used;
    void *scratch;
};

enum { VDEV_ABSENT, VDEV_FOUND, VDEV_READY, VDEV_FAILED };

struct virtio_dev {
    uint64_t base;              /* physical address of the register slot */
    uint32_t irq;               /* ISA IRQ; >= 16 (or 0, 2, 4): polled */
    uint32_t device_id;
    volatile uint8_t *regs;     /* the slot, mapped uncached */
    uint32_t version;           /* the transport's: only 2 is driven */
    uint32_t queue_index;       /* the queue q is */
    uint8_t state;              /* VDEV_* */
    uint8_t polled;             /* no usable PIC input: wait for the timer tick */
    volatile uint8_t broken;    /* DEVICE_NEEDS_RESET seen: every request fails */
    uint64_t features;          /* negotiated */
    struct virtq q;             /* the one queue each of our drivers uses */
    /* virtio-blk */
    uint64_t capacity;          /* in 512-byte sectors */
    uint32_t max_segs;          /* data descriptors per request */
};

/* mm/uaccess.c user_dma_map(): the physical pieces of the user buffer
 * [addr, addr+len), checked like user_ok (present or faulted in, user,
 * writable if the device will write), physically contiguous pages merged,
 * at most `max` pieces.  Returns the bytes covered from addr on (less than
 * len where a bad page or the piece limit ends it; 0: the first page is
 * bad) and the count in *n. */

/* Transport (virtio_mmio.c). */
/* One virtio_mmio.device= value (not NUL-terminated): kept, and read when a
 * device is first opened. */
void virtio_mmio_param(const char *value, size_t len);
/* The n-th device of this type (in command-line order, the slots probed on
 * first use), brought up with virtio_setup: 0, -ENOENT (no such device), or
 * -ENXIO (it cannot be used; the reason was printed). */
long virtio_open(uint32_t device_id, int n, uint64_t wanted, int queue_index, struct virtio_dev **out);
/* Reset, features (VERSION_1 plus the `wanted` feature bits the device
 * offers), queue `queue_index`, DRIVER_OK; once.  0 or -ENXIO. */
long virtio_setup(struct virtio_dev *d, uint64_t wanted, int queue_index);
/* Post the chain of `n` descriptors already written from q.desc[0] on, notify,
 * sleep until the device returns it.  Returns the bytes the device wrote, or
 * -EIO if the device needs a reset. */
long virtio_request(struct virtio_dev *d, int n);
/* Fill descriptor i of a linear chain (NEXT is added unless it is the last). */
static inline void virtq_desc_set(struct virtio_dev *d, int i, uint64_t pa, uint32_t len,
                                  uint16_t flags, int last)
{
    struct virtq_desc *desc = &d->q.desc[i];
    desc->addr = pa;
    desc->len = len;
    desc->flags = last ? flags : flags | VIRTQ_DESC_F_NEXT;
    desc->next = (uint16_t)(i + 1);
}
uint32_t virtio_config32(struct virtio_dev *d, uint32_t offset);
void virtio_irq(uint64_t irq);                  /* from irq_dispatch */

/* virtio-blk (virtio_blk.c).  Offsets and lengths in bytes, multiples of 512. */
long virtio_blk_open(int index, struct virtio_dev **out);  /* /dev/vda = 0 */
long virtio_blk_rw(struct virtio_dev *d, int write, uint64_t buf, uint64_t count, int64_t offset);
long virtio_blk_flush(struct virtio_dev *d);
long virtio_blk_id(struct virtio_dev *d, char id[VIRTIO_BLK_ID_BYTES]);
int virtio_blk_read_only(struct virtio_dev *d);

/* virtio-rng and the virtio console's port 0 (virtio_rng.c, virtio_console.c). */
long virtio_rng_open(struct virtio_dev **out);
long virtio_rng_read(struct virtio_dev *d, uint64_t buf, uint64_t count);
long virtio_console_open(struct virtio_dev **out);
long virtio_console_write(struct virtio_dev *d, uint64_t buf, uint64_t count);

#endif
