/*
 * Files: descriptors 3 and up, each naming one virtio device, with Linux's
 * system calls and error numbers.  There is no file system; openat knows
 * these absolute paths (the directory fd is ignored, as Linux ignores it for
 * an absolute path; a relative path names nothing):
 *
 *   /dev/vda, /dev/vdb, ...     virtio-blk disks in command-line order:
 *                               read/write at the file position, pread64,
 *                               pwrite64, lseek, fsync/fdatasync (FLUSH),
 *                               ioctl BLKGETSIZE64, BLKSSZGET, BLKROGET
 *   /sys/block/vdX/serial       the disk's GET_ID string and "\n" (read only)
 *   /dev/hwrng                  virtio-rng, read only (as Linux: O_RDONLY)
 *   /dev/hvc0                   the virtio console's port 0, write only
 *
 * Descriptors 0-2 stay the serial console (syscall.c); close() on them
 * succeeds and changes nothing.  MAX_FILES descriptors at most (-EMFILE).
 */
#include "file.h"
#include "kernel.h"
#include "layout.h"
#include "uspace.h"
#include "virtio.h"

enum { F_FREE, F_DISK, F_SERIAL, F_RNG, F_HVC };

struct file {
    uint8_t kind;
    uint8_t mode;               /* O_RDONLY, O_WRONLY or O_RDWR */
    struct virtio_dev *dev;
    int64_t pos;                /* disks and the serial file */
};

static struct file files[MAX_FILES];

static struct file *lookup(uint64_t fd)
{
    if (fd < FIRST_FILE_FD || fd >= FIRST_FILE_FD + MAX_FILES)
        return 0;
    struct file *f = &files[fd - FIRST_FILE_FD];
    return f->kind == F_FREE ? 0 : f;
}

static int is_stdio(uint64_t fd)
{
    return fd < FIRST_FILE_FD;
}

/* Has a file position (lseek; read and write move it). */
static int seekable(const struct file *f)
{
    return f->kind == F_DISK || f->kind == F_SERIAL;
}

/* Takes pread64/pwrite64: as on Linux, also /dev/hwrng (which ignores the
 * offset), not the console (a tty: -ESPIPE). */
static int positional_ok(const struct file *f)
{
    return f->kind != F_HVC;
}

/* ---- openat / close --------------------------------------------------------- */

/* The user's path into buf[PATH_BYTES]: its length, PATH_BYTES if it is
 * longer (then it names none of our files), or -EFAULT. */
static long copy_path(uint64_t addr, char *buf)
{
    for (uint64_t i = 0; i < PATH_BYTES; i++) {
        if ((i == 0 || (addr + i) % PAGE_SIZE == 0) && !user_ok(addr + i, 1, 0))
            return -EFAULT;
        buf[i] = ((const volatile char *)addr)[i];
        if (!buf[i])
            return (long)i;
    }
    return PATH_BYTES;
}

static int starts_with(const char *s, const char *prefix)
{
    while (*prefix)
        if (*s++ != *prefix++)
            return 0;
    return 1;
}

/* prefix + one letter a-z + suffix: the letter's index, or -1. */
static int disk_letter(const char *path, const char *prefix, const char *suffix)
{
    size_t n = strlen(prefix);
    if (!starts_with(path, prefix) || path[n] < 'a' || path[n] > 'z')
        return -1;
    if (!starts_with(path + n + 1, suffix) || path[n + 1 + strlen(suffix)])
        return -1;
    return path[n] - 'a';
}

static int same(const char *a, const char *b)
{
    return strlen(a) == strlen(b) && starts_with(a, b);
}

long sys_openat(uint64_t dirfd, uint64_t path, uint64_t flags, uint64_t mode)
{
    (void)dirfd;
    (void)mode;
    char p[PATH_BYTES];
    long r = copy_path(path, p);
    if (r < 0)
        return r;
    if (r == PATH_BYTES)
        return -ENOENT;
    uint8_t access = flags & O_ACCMODE;
    if (access == O_ACCMODE)
        return -EINVAL;
    struct virtio_dev *d = 0;
    int kind, index;
    if ((index = disk_letter(p, "/dev/vd", "")) >= 0) {
        kind = F_DISK;
        r = virtio_blk_open(index, &d);
    } else if ((index = disk_letter(p, "/sys/block/vd", "/serial")) >= 0) {
        kind = F_SERIAL;
        r = virtio_blk_open(index, &d);
        if (r == 0 && access != O_RDONLY)
            r = -EACCES;                /* sysfs: a read-only attribute */
    } else if (same(p, "/dev/hwrng")) {
        kind = F_RNG;
        r = virtio_rng_open(&d);
        if (r == 0 && access != O_RDONLY)
            r = -EINVAL;                /* Linux's rng_dev_open */
    } else if (same(p, "/dev/hvc0")) {
        kind = F_HVC;
        r = virtio_console_open(&d);
    } else {
        return -ENOENT;
    }
    if (r < 0)
        return r;
    if ((flags & (O_CREAT | O_EXCL)) == (O_CREAT | O_EXCL))
        return -EEXIST;
    for (int i = 0; i < MAX_FILES; i++) {
        if (files[i].kind == F_FREE) {
            files[i].kind = (uint8_t)kind;
            files[i].mode = access;
            files[i].dev = d;
            files[i].pos = 0;
            return FIRST_FILE_FD + i;
        }
    }
    return -EMFILE;
}

long sys_close(uint64_t fd)
{
    if (is_stdio(fd))
        return 0;
    struct file *f = lookup(fd);
    if (!f)
        return -EBADF;
    f->kind = F_FREE;
    return 0;
}

/* ---- reading and writing ---------------------------------------------------- */

/* "<id>\n" of the disk, into the user's buffer from byte `pos` of it.  (Not
 * inlined: file_read stays a frameless dispatcher on the disk path.) */
static __attribute__((noinline)) long serial_read(struct file *f, uint64_t buf, uint64_t count, int64_t pos)
{
    char text[VIRTIO_BLK_ID_BYTES + 1];
    long r = virtio_blk_id(f->dev, text);
    if (r < 0)
        return r;
    uint64_t len = 0;
    while (len < VIRTIO_BLK_ID_BYTES && text[len])
        len++;
    text[len++] = '\n';
    if ((uint64_t)pos >= len)
        return 0;
    count = MIN(count, len - (uint64_t)pos);
    if (!user_ok(buf, count, 1))
        return -EFAULT;
    memcpy((void *)buf, text + pos, count);
    return (long)count;
}

static long file_read(struct file *f, uint64_t buf, uint64_t count, int64_t pos)
{
    if (f->mode == O_WRONLY)
        return -EBADF;
    switch (f->kind) {
    case F_DISK:   return virtio_blk_rw(f->dev, 0, buf, count, pos);
    case F_SERIAL: return serial_read(f, buf, count, pos);
    case F_RNG:    return virtio_rng_read(f->dev, buf, count);
    default:       return -EINVAL;      /* hvc0: no receive queue */
    }
}

static long file_write(struct file *f, uint64_t buf, uint64_t count, int64_t pos)
{
    if (f->mode == O_RDONLY)
        return -EBADF;
    switch (f->kind) {
    case F_DISK:   return virtio_blk_rw(f->dev, 1, buf, count, pos);
    case F_HVC:    return virtio_console_write(f->dev, buf, count);
    default:       return -EINVAL;
    }
}

long file_read_fd(uint64_t fd, uint64_t buf, uint64_t count)
{
    struct file *f = lookup(fd);
    if (!f)
        return -EBADF;
    long r = file_read(f, buf, count, f->pos);
    if (r > 0 && seekable(f))
        f->pos += r;
    return r;
}

long file_write_fd(uint64_t fd, uint64_t buf, uint64_t count)
{
    struct file *f = lookup(fd);
    if (!f)
        return -EBADF;
    long r = file_write(f, buf, count, f->pos);
    if (r > 0 && seekable(f))
        f->pos += r;
    return r;
}

/* pread64/pwrite64: Linux's order of checks (ksys_pread64, vfs_read). */
static struct file *positional(uint64_t fd, int64_t offset, long *error)
{
    struct file *f = lookup(fd);
    *error = offset < 0 ? -EINVAL : !f && !is_stdio(fd) ? -EBADF : (!f || !positional_ok(f)) ? -ESPIPE : 0;
    return *error ? 0 : f;
}

long sys_pread64(uint64_t fd, uint64_t buf, uint64_t count, uint64_t offset)
{
    long error;
    struct file *f = positional(fd, (int64_t)offset, &error);
    return f ? file_read(f, buf, count, (int64_t)offset) : error;
}

long sys_pwrite64(uint64_t fd, uint64_t buf, uint64_t count, uint64_t offset)
{
    long error;
    struct file *f = positional(fd, (int64_t)offset, &error);
    return f ? file_write(f, buf, count, (int64_t)offset) : error;
}

/* ---- the rest -------------------------------------------------------------- */

long sys_lseek(uint64_t fd, uint64_t offset, uint64_t whence)
{
    struct file *f = lookup(fd);
    if (!f)
        return is_stdio(fd) ? -ESPIPE : -EBADF;
    if (f->kind == F_RNG)
        return 0;                       /* Linux's hwrng: noop_llseek */
    if (!seekable(f))
        return -ESPIPE;
    int64_t base;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = f->pos; break;
    case SEEK_END: base = f->kind == F_DISK ? (int64_t)(f->dev->capacity * SECTOR_SIZE) : PAGE_SIZE; break;
    default:       return -EINVAL;
    }
    int64_t pos = (int64_t)((uint64_t)base + offset);   /* wraps: no undefined overflow */
    if (pos < 0)
        return -EINVAL;
    f->pos = pos;
    return pos;
}

long sys_fsync(uint64_t fd)
{
    struct file *f = lookup(fd);
    if (!f)
        return is_stdio(fd) ? -EINVAL : -EBADF;
    return f->kind == F_DISK ? virtio_blk_flush(f->dev) : -EINVAL;
}

long file_ioctl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
    struct file *f = lookup(fd);
    if (!f)
        return -EBADF;
    if (f->kind != F_DISK)
        return -ENOTTY;
    switch (cmd) {
    case BLKGETSIZE64:
        if (!user_ok(arg, 8, 1))
            return -EFAULT;
        *(uint64_t *)arg = f->dev->capacity * SECTOR_SIZE;
        return 0;
    case BLKSSZGET:
    case BLKROGET:
        if (!user_ok(arg, 4, 1))
            return -EFAULT;
        *(int32_t *)arg = cmd == BLKSSZGET ? SECTOR_SIZE : virtio_blk_read_only(f->dev);
        return 0;
    default:
        return -ENOTTY;
    }
}
