/*
 * Device files, found by device number as on Linux, so a node made by the
 * archive (mknod in the rootfs) works like one the kernel made:
 *
 *   1:3 /dev/null   1:5 /dev/zero   1:7 /dev/full
 *   1:8 /dev/random  1:9 /dev/urandom   virtio-rng, else RDRAND, else a
 *                                        TSC-seeded generator (not secure)
 *   5:0 /dev/tty   5:1 /dev/console     the serial console (console.c)
 *   10:183 /dev/hwrng   229:0 /dev/hvc0  virtio-rng, the virtio console
 *   254:16n /dev/vd[a-z]                 virtio-blk disks in order
 *
 * /dev/console is made at boot (descriptors 0-2 of the first program), the
 * other standard nodes when /dev is first used; the virtio ones on their
 * first lookup, which probes the device (the probe costs MMIO exits, so a
 * program that names none pays nothing).  A number no driver knows opens
 * as ENXIO.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "virtio.h"
#include "x86.h"

#define CPUID_1_ECX_RDRAND (1u << 30)

/* ---- null, zero, full ---------------------------------------------------------- */

static long null_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)f; (void)buf; (void)count; (void)pos;
    return 0;
}

static long null_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)f; (void)buf; (void)pos;
    return (long)count;
}

static long zero_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)f; (void)pos;
    uint64_t n = user_ok_prefix(buf, count, 1);
    if (!n && count)
        return -EFAULT;
    memset((void *)buf, 0, n);
    return (long)n;
}

static long full_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)f; (void)buf; (void)count; (void)pos;
    return -ENOSPC;
}

static const struct file_ops null_ops = { .read = null_read, .write = null_write, .flags = FOP_SEEK_ZERO | FOP_PREAD };
static const struct file_ops zero_ops = { .read = zero_read, .write = null_write, .flags = FOP_SEEK_ZERO | FOP_PREAD };
static const struct file_ops full_ops = { .read = zero_read, .write = full_write, .flags = FOP_SEEK_ZERO | FOP_PREAD };

/* ---- randomness ------------------------------------------------------------------- */

static int has_rdrand(void)
{
    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    return (c & CPUID_1_ECX_RDRAND) != 0;
}

static uint64_t fallback_word(void)
{
    static uint64_t state;
    uint64_t v;
    if (has_rdrand()) {
        for (int tries = 0; tries < 10; tries++) {
            uint8_t ok;
            __asm__ volatile("rdrand %0; setc %1" : "=r"(v), "=qm"(ok));
            if (ok)
                return v;
        }
    }
    state += rdtsc() | 1;               /* splitmix64 over the TSC: unpredictable enough for tests only */
    v = state * 0x9e3779b97f4a7c15ull;
    v = (v ^ (v >> 30)) * 0xbf58476d1ce4e5b9ull;
    return v ^ (v >> 31);
}

long random_read(uint64_t buf, uint64_t count)
{
    if (count == 0)
        return 0;
    struct virtio_dev *rng;
    if (virtio_rng_open(&rng) == 0) {
        uint64_t done = 0;
        while (done < count) {
            long r = virtio_rng_read(rng, buf + done, count - done);
            if (r <= 0)
                return done ? (long)done : (r ? r : -EIO);
            done += (uint64_t)r;
        }
        return (long)done;
    }
    uint64_t n = user_ok_prefix(buf, count, 1);
    if (!n)
        return -EFAULT;
    for (uint64_t i = 0; i < n; i += 8) {
        uint64_t v = fallback_word();
        memcpy((char *)buf + i, &v, MIN(8, n - i));
    }
    return (long)n;
}

static long urandom_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)f; (void)pos;
    return random_read(buf, count);
}

static const struct file_ops urandom_ops = { .read = urandom_read, .write = null_write, .flags = FOP_SEEK_ZERO | FOP_PREAD };

/* ---- virtio devices ------------------------------------------------------------------ */

static long hwrng_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    return virtio_rng_read(f->priv, buf, count);
}

static long hvc_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    return virtio_console_write(f->priv, buf, count);
}

static long not_syncable(struct file *f)
{
    (void)f;
    return -EINVAL;
}

static long disk_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    long r = virtio_blk_rw(f->priv, 0, buf, count, *pos);
    if (r > 0)
        *pos += r;
    return r;
}

static long disk_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    long r = virtio_blk_rw(f->priv, 1, buf, count, *pos);
    if (r > 0)
        *pos += r;
    return r;
}

static long disk_fsync(struct file *f)
{
    return virtio_blk_flush(f->priv);
}

static int64_t disk_end(struct file *f)
{
    return (int64_t)(((struct virtio_dev *)f->priv)->capacity * SECTOR_SIZE);
}

static long disk_ioctl(struct file *f, uint64_t cmd, uint64_t arg)
{
    struct virtio_dev *d = f->priv;
    switch (cmd) {
    case BLKGETSIZE64: {
        uint64_t size = d->capacity * SECTOR_SIZE;
        return copy_to_user(arg, &size, 8);
    }
    case BLKSSZGET:
    case BLKROGET: {
        int32_t v = cmd == BLKSSZGET ? SECTOR_SIZE : virtio_blk_read_only(d);
        return copy_to_user(arg, &v, 4);
    }
    default:
        return -ENOTTY;
    }
}

static const struct file_ops hwrng_ops = { .read = hwrng_read, .fsync = not_syncable, .flags = FOP_SEEK_ZERO | FOP_PREAD };
static const struct file_ops hvc_ops = { .write = hvc_write, .fsync = not_syncable };
static const struct file_ops disk_ops = {
    .read = disk_read, .write = disk_write, .ioctl = disk_ioctl, .fsync = disk_fsync, .end = disk_end,
    .flags = FOP_SEEKABLE | FOP_PREAD,
};

long device_open(struct inode *ino, struct file *f)
{
    uint32_t rdev = ino->rdev;
    struct virtio_dev *d;
    long r;
    if (S_ISBLK(ino->mode)) {
        if (MAJOR(rdev) != VIRTBLK_MAJOR || MINOR(rdev) % VIRTBLK_MINORS)
            return -ENXIO;
        if ((r = virtio_blk_open((int)(MINOR(rdev) / VIRTBLK_MINORS), &d)) < 0)
            return r == -ENOENT ? -ENXIO : r;
        f->ops = &disk_ops;
        f->priv = d;
        return 0;
    }
    switch (rdev) {
    case DEV_NULL:    f->ops = &null_ops; return 0;
    case DEV_ZERO:    f->ops = &zero_ops; return 0;
    case DEV_FULL:    f->ops = &full_ops; return 0;
    case DEV_RANDOM:
    case DEV_URANDOM: f->ops = &urandom_ops; return 0;
    case DEV_TTY:
    case DEV_CONSOLE: f->ops = &console_ops; return 0;
    case DEV_HWRNG:
        if ((r = virtio_rng_open(&d)) < 0)
            return r == -ENOENT ? -ENXIO : r;
        if ((f->flags & O_ACCMODE) != O_RDONLY)
            return -EINVAL;             /* Linux's rng_dev_open */
        f->ops = &hwrng_ops;
        f->priv = d;
        return 0;
    case DEV_HVC0:
        if ((r = virtio_console_open(&d)) < 0)
            return r == -ENOENT ? -ENXIO : r;
        f->ops = &hvc_ops;
        f->priv = d;
        return 0;
    default:
        return -ENXIO;
    }
}

/* ---- /dev ------------------------------------------------------------------------------ */

/* A virtio device's node, made when its name is first looked up and the
 * device answers the probe. */
static struct inode *dev_lookup(struct inode *dir, const char *name, size_t len)
{
    struct virtio_dev *d;
    char node[8];
    if (len == 3 && memcmp(name, "vd", 2) == 0 && name[2] >= 'a' && name[2] <= 'z') {
        int index = name[2] - 'a';
        if (virtio_blk_open(index, &d) == -ENOENT)
            return 0;
        memcpy(node, name, 3);
        node[3] = 0;
        return vfs_mknod_kernel(dir, node, S_IFBLK | 0660, MKDEV(VIRTBLK_MAJOR, index * VIRTBLK_MINORS));
    }
    if (len == 5 && memcmp(name, "hwrng", 5) == 0 && virtio_rng_open(&d) != -ENOENT)
        return vfs_mknod_kernel(dir, "hwrng", S_IFCHR | 0600, DEV_HWRNG);
    if (len == 4 && memcmp(name, "hvc0", 4) == 0 && virtio_console_open(&d) != -ENOENT)
        return vfs_mknod_kernel(dir, "hvc0", S_IFCHR | 0600, DEV_HVC0);
    return 0;
}

static void dev_fill(struct inode *dev)
{
    static const struct { const char *name; uint32_t mode, rdev; } nodes[] = {
        { "null", 0666, DEV_NULL }, { "zero", 0666, DEV_ZERO }, { "full", 0666, DEV_FULL },
        { "random", 0666, DEV_RANDOM }, { "urandom", 0666, DEV_URANDOM }, { "tty", 0666, DEV_TTY },
    };
    for (size_t i = 0; i < sizeof nodes / sizeof nodes[0]; i++)
        vfs_mknod_kernel(dev, nodes[i].name, S_IFCHR | nodes[i].mode, nodes[i].rdev);
}

static const struct inode_ops dev_dir_ops = { .lookup = dev_lookup, .fill = dev_fill };

void devices_init(void)
{
    struct inode *dev = vfs_mkdir_kernel(root_inode, "dev", 0755);
    if (!dev)
        panic("/dev is not a directory");
    dev->ops = &dev_dir_ops;            /* the other standard nodes on first use */

    /* Descriptors 0, 1 and 2: the console, as Linux opens it for init. */
    struct inode *console = vfs_mknod_kernel(dev, "console", S_IFCHR | 0600, DEV_CONSOLE);
    struct file *f;
    if (!console || file_open_inode(console, O_RDWR, &f) < 0 || fd_install(f, 0, 0) != 0)
        panic("cannot open /dev/console");
    fd_dup_to(0, 1, 0);
    fd_dup_to(0, 2, 0);
}
