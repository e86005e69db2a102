/*
 * virtio over MMIO, version 2 (virtio 1.2 section 4.2), and the split
 * virtqueue from the driver's side (2.7).
 *
 * Discovery: the command line announces each slot in Linux's syntax,
 * virtio_mmio.device=<size>@<base>:<irq> (our VMM: 4K@0xd0000000:5 ...; QEMU
 * microvm with acpi=off: 512@0xfeb00e00:12 ...).  Boot only keeps the values;
 * the first open of a device (file.c) parses them, then probes every slot
 * once (magic, version, device ID: three MMIO reads each) and brings up only
 * the opened device.  A program that opens nothing pays almost nothing.
 *
 * One request at a time, synchronously: a driver writes its descriptor chain
 * at descriptors 0..n-1 of its one queue, virtio_request() publishes it,
 * notifies and sleeps in cpu_idle() (sti; hlt) until the used index moves.
 * The kernel is single-threaded and runs with IF=0, so nothing else touches
 * the queue meanwhile.
 *
 * Interrupts: the available ring says VIRTQ_AVAIL_F_NO_INTERRUPT except
 * while we sleep.  Our VMM serves a request inside the QueueNotify write, so
 * the used index has moved by the time the write returns and no interrupt is
 * ever raised: one VM exit per request.  A device that completes later (QEMU
 * serves from its I/O thread) finds the flag clear and interrupts; the handler
 * reads InterruptStatus and acknowledges it (so the line falls and the next
 * completion makes a fresh edge at the edge-triggered 8259A), and the wait
 * loop re-checks the used ring after every wake-up (the PIT tick wakes it
 * every 10 ms in any case), so a merged or lost edge costs at most a tick.
 * A slot whose IRQ the PIC cannot take (>= 16, as QEMU's second IOAPIC
 * would give, or 0/2/4 which are the timer, cascade and COM1) is polled: its
 * waits end on the timer tick.
 *
 * Failure: a device that sets DEVICE_NEEDS_RESET (it found our queue broken)
 * raises a configuration-change interrupt; the handler marks it broken, the
 * waiting request and every later one fail with -EIO.  We do not reset and
 * retry: a broken device stays unusable until the next boot.
 */
#include "irq.h"
#include "kernel.h"
#include "mm/mm.h"
#include "pic.h"
#include "serial.h"
#include "virtio.h"

static struct virtio_dev devs[VIRTIO_MAX_DEVICES];
static int ndevs, probed;

static inline uint32_t rd(struct virtio_dev *d, uint32_t reg)
{
    return *(volatile uint32_t *)(d->regs + reg);
}

static inline void wr(struct virtio_dev *d, uint32_t reg, uint32_t value)
{
    *(volatile uint32_t *)(d->regs + reg) = value;
}

uint32_t virtio_config32(struct virtio_dev *d, uint32_t offset)
{
    return rd(d, VIRTIO_MMIO_CONFIG + offset);
}

static void say(struct virtio_dev *d, const char *what)
{
    serial_start_line();
    serial_puts("virtio-mmio at ");
    serial_put_hex(d->base);
    serial_puts(": ");
    serial_puts(what);
    serial_puts("\n");
}

/* ---- virtio_mmio.device=<size>@<base>:<irq>[:<id>] -------------------------- */

/* A number as Linux's memparse reads it: 0x.. hex, 0.. octal, else decimal,
 * then (if `suffix`) K, M or G.  Returns 0 if there are no digits. */
static int parse_num(const char **s, uint64_t *out, int suffix)
{
    const char *p = *s;
    uint64_t base = 10, v = 0;
    if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
        base = 16;
        p += 2;
    } else if (p[0] == '0') {
        base = 8;
    }
    const char *digits = p;
    for (;; p++) {
        uint64_t d;
        if (*p >= '0' && *p <= '9')
            d = *p - '0';
        else if (*p >= 'a' && *p <= 'f')
            d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F')
            d = *p - 'A' + 10;
        else
            break;
        if (d >= base)
            break;
        v = v * base + d;
    }
    if (p == digits && base != 8)
        return 0;
    if (suffix) {
        switch (*p) {
        case 'G': case 'g': v <<= 10;   /* fall through */
        case 'M': case 'm': v <<= 10;   /* fall through */
        case 'K': case 'k': v <<= 10; p++;
        }
    }
    *out = v;
    *s = p;
    return 1;
}

/* The values as the command line gave them, NUL-separated: parsing waits for
 * the first open (a program that opens nothing pays only for this copy). */
static char params[VIRTIO_PARAM_BYTES];
static size_t params_used;

void virtio_mmio_param(const char *value, size_t len)
{
    if (params_used + len + 1 > sizeof params) {
        serial_start_line();
        serial_puts("virtio: no room for another virtio_mmio.device= option: ignored\n");
        return;
    }
    memcpy(params + params_used, value, len);
    params[params_used + len] = 0;
    params_used += len + 1;
}

static void parse_param(const char *value)
{
    const char *p = value;
    uint64_t size, base, irq;
    if (!parse_num(&p, &size, 1) || *p++ != '@' || !parse_num(&p, &base, 1) ||
        *p++ != ':' || !parse_num(&p, &irq, 0) || (*p && *p != ':') ||
        size < VIRTIO_MMIO_MIN_SIZE || base & 3 || base + size < base ||
        base + size > DIRECT_MAP_LIMIT || ndevs == VIRTIO_MAX_DEVICES ||
        /* mmio_map makes the whole 2 MiB page uncached: it must hold no RAM */
        mm_overlaps_ram(ALIGN_DOWN(base, LARGE_PAGE_SIZE), ALIGN_UP(base + size, LARGE_PAGE_SIZE))) {
        serial_start_line();
        serial_puts("virtio: ignoring virtio_mmio.device=");
        serial_puts(value);
        serial_puts("\n");
        return;
    }
    devs[ndevs].base = base;
    devs[ndevs].irq = irq > 0xffff ? 0xffff : (uint32_t)irq;
    ndevs++;
}

/* ---- discovery ------------------------------------------------------------- */

static void probe_all(void)
{
    probed = 1;
    for (size_t at = 0; at < params_used; at += strlen(params + at) + 1)
        parse_param(params + at);
    for (int i = 0; i < ndevs; i++) {
        struct virtio_dev *d = &devs[i];
        d->regs = mmio_map(d->base, VIRTIO_MMIO_MIN_SIZE);
        if (rd(d, VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC)
            continue;                   /* nothing there: stays VDEV_ABSENT */
        d->version = rd(d, VIRTIO_MMIO_VERSION);
        d->device_id = rd(d, VIRTIO_MMIO_DEVICE_ID);    /* 0: an empty slot */
        if (d->device_id)
            d->state = VDEV_FOUND;
    }
}

long virtio_open(uint32_t device_id, int n, uint64_t wanted, int queue_index, struct virtio_dev **out)
{
    if (!probed)
        probe_all();
    for (int i = 0; i < ndevs; i++) {
        struct virtio_dev *d = &devs[i];
        if (d->state == VDEV_ABSENT || d->device_id != device_id || n--)
            continue;
        *out = d;
        return virtio_setup(d, wanted, queue_index);
    }
    return -ENOENT;
}

/* ---- bring-up (3.1.1) ------------------------------------------------------- */

static long setup_failed(struct virtio_dev *d, const char *why)
{
    say(d, why);
    if (d->version == 2)
        wr(d, VIRTIO_MMIO_STATUS, rd(d, VIRTIO_MMIO_STATUS) | VIRTIO_STATUS_FAILED);
    d->state = VDEV_FAILED;
    return -ENXIO;
}

static int irq_usable(uint32_t irq)
{
    return irq < IRQ_COUNT && irq != IRQ_TIMER && irq != PIC_CASCADE_IRQ && irq != IRQ_COM1;
}

static long setup_queue(struct virtio_dev *d, int index)
{
    struct virtq *q = &d->q;
    wr(d, VIRTIO_MMIO_QUEUE_SEL, index);
    uint32_t max = rd(d, VIRTIO_MMIO_QUEUE_NUM_MAX);
    if (max < 4)                        /* room for a header, data pieces and a status byte */
        return -1;
    uint32_t size = VIRTQ_MAX_SIZE;
    while (size > max)
        size >>= 1;
    uint64_t pa = alloc_page_unzeroed();
    if (!pa)
        return -1;
    uint8_t *page = phys_to_virt(pa);
    q->size = size;
    q->avail_idx = q->last_used = 0;
    q->pa = pa;
    q->desc = (struct virtq_desc *)page;
    q->avail = (volatile struct virtq_avail *)(page + VIRTQ_AVAIL_OFFSET);
    q->used = (volatile struct virtq_used *)(page + VIRTQ_USED_OFFSET);
    q->scratch = page + VIRTQ_SCRATCH_OFFSET;
    /* Only the indexes must start at 0: descriptors and ring slots are
     * written before the device may read them. */
    q->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    q->avail->idx = 0;
    q->used->flags = 0;
    q->used->idx = 0;
    wr(d, VIRTIO_MMIO_QUEUE_NUM, size);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)pa);
    wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(pa >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)(pa + VIRTQ_AVAIL_OFFSET));
    wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(pa >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)(pa + VIRTQ_USED_OFFSET));
    wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(pa >> 32));
    wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
    d->queue_index = index;
    return 0;
}

long virtio_setup(struct virtio_dev *d, uint64_t wanted, int queue_index)
{
    if (d->state == VDEV_READY)
        return 0;
    if (d->state != VDEV_FOUND)
        return -ENXIO;
    if (d->version != 2)
        return setup_failed(d, d->version == 1 ? "legacy virtio-mmio (version 1) is not supported"
                                               : "unknown virtio-mmio version");
    uint32_t status = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    wr(d, VIRTIO_MMIO_STATUS, 0);                       /* reset */
    wr(d, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(d, VIRTIO_MMIO_STATUS, status);
    wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
    uint64_t offered = rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
    wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    offered |= (uint64_t)rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
    if (!(offered & (1ull << VIRTIO_F_VERSION_1)))
        return setup_failed(d, "the device does not offer VIRTIO_F_VERSION_1");
    /* No INDIRECT_DESC, no EVENT_IDX: one request at a time needs neither. */
    d->features = (offered & wanted) | (1ull << VIRTIO_F_VERSION_1);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)d->features);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(d->features >> 32));
    status |= VIRTIO_STATUS_FEATURES_OK;
    wr(d, VIRTIO_MMIO_STATUS, status);
    if (!(rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK))
        return setup_failed(d, "the device refused our features");
    if (setup_queue(d, queue_index) < 0)
        return setup_failed(d, "no usable queue (or no memory for it)");
    d->polled = !irq_usable(d->irq);
    if (!d->polled)
        pic_unmask((int)d->irq);
    wr(d, VIRTIO_MMIO_STATUS, status | VIRTIO_STATUS_DRIVER_OK);
    d->state = VDEV_READY;
    return 0;
}

/* ---- requests -------------------------------------------------------------- */

long virtio_request(struct virtio_dev *d, int n)
{
    struct virtq *q = &d->q;
    (void)n;                            /* the chain starts at descriptor 0 */
    if (d->broken)
        return -EIO;
    q->avail->ring[q->avail_idx & (q->size - 1)] = 0;
    __asm__ volatile("" ::: "memory");  /* descriptors and slot before the index (x86: stores stay in order) */
    q->avail->idx = ++q->avail_idx;
    wr(d, VIRTIO_MMIO_QUEUE_NOTIFY, d->queue_index);
    if (q->used->idx == q->last_used) {
        /* Not done inside the notify: ask for an interrupt, then look again
         * (the device may have finished before it could see the flag). */
        q->avail->flags = d->polled ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0;
        __asm__ volatile("mfence" ::: "memory");
        while (q->used->idx == q->last_used) {
            if (d->broken) {
                q->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
                return -EIO;
            }
            cpu_idle();
            if (d->polled && (rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
                d->broken = 1;
        }
        q->avail->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    }
    uint32_t written = q->used->ring[q->last_used & (q->size - 1)].len;
    q->last_used++;
    return written;
}

/* IRQ handler (irq_dispatch): acknowledge what each device on this line
 * says, so its line falls; the waiting request re-checks its used ring. */
void virtio_irq(uint64_t irq)
{
    for (int i = 0; i < ndevs; i++) {
        struct virtio_dev *d = &devs[i];
        if (d->state != VDEV_READY || d->irq != irq)
            continue;
        uint32_t isr = rd(d, VIRTIO_MMIO_INTERRUPT_STATUS);
        if (!isr)
            continue;
        wr(d, VIRTIO_MMIO_INTERRUPT_ACK, isr);
        if ((isr & VIRTIO_MMIO_INT_CONFIG) && (rd(d, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_NEEDS_RESET))
            d->broken = 1;
    }
}
