/*
 * Reading and writing: read, write, readv, writev, pread64, pwrite64,
 * preadv, pwritev, lseek, sendfile, fsync, fdatasync, ioctl.  The checks
 * and their order are Linux's (ksys_read, vfs_read, ksys_pread64 ...): a bad
 * descriptor EBADF, the wrong access mode EBADF, a file without positions
 * ESPIPE for the positional calls, a directory EISDIR.
 *
 * sendfile moves the data through a kernel page, with user-pointer checks
 * switched to accept kernel addresses for the two calls (as Linux's old
 * set_fs(KERNEL_DS)); files whose data goes by DMA into user pages (disks,
 * hvc0) refuse kernel buffers, and callers (busybox's cat) then fall back
 * to read and write.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "regs.h"

#define MAX_RW_COUNT 0x7ffff000ul       /* INT_MAX rounded down to a page: Linux's cap per call */

/* The checks of a read or write on f (NULL: the descriptor is not open). */
static struct file *checked(struct file *f, int write, long *err)
{
    if (!f || (f->flags & O_PATH) || (f->flags & O_ACCMODE) == (write ? O_RDONLY : O_WRONLY)) {
        *err = -EBADF;
        return 0;
    }
    if (S_ISDIR(f->inode->mode)) {
        *err = -EISDIR;
        return 0;
    }
    if (!f->ops || !(write ? f->ops->write : f->ops->read)) {
        *err = -EINVAL;
        return 0;
    }
    return f;
}

static struct file *file_for(uint64_t fd, int write, long *err)
{
    return checked(fd_file((int)fd), write, err);
}

static long do_rw(struct file *f, int write, uint64_t buf, uint64_t count, int64_t *pos)
{
    count = MIN(count, MAX_RW_COUNT);
    return write ? f->ops->write(f, buf, count, pos) : f->ops->read(f, buf, count, pos);
}

long sys_read(uint64_t fd, uint64_t buf, uint64_t count)
{
    long err;
    struct file *f = file_for(fd, 0, &err);
    return f ? do_rw(f, 0, buf, count, &f->pos) : err;
}

/* read() on the full path: a boot-image file may go through the copy window. */
long sys_read_regs(struct regs *r)
{
    long err;
    struct file *f = file_for(r->rdi, 0, &err);
    if (!f)
        return err;
    uint64_t count = MIN(r->rdx, MAX_RW_COUNT), pos_before = (uint64_t)f->pos;
    if (ramfs_read_through_window(f, r, r->rsi, count, &f->pos))
        return (long)((uint64_t)f->pos - pos_before);
    return do_rw(f, 0, r->rsi, count, &f->pos);
}

long sys_write(uint64_t fd, uint64_t buf, uint64_t count)
{
    long err;
    struct file *f = file_for(fd, 1, &err);
    return f ? do_rw(f, 1, buf, count, &f->pos) : err;
}

/* pread64/pwrite64 and friends: Linux's order of checks. */
static struct file *positional(uint64_t fd, int64_t offset, int write, long *err)
{
    if (offset < 0) {
        *err = -EINVAL;
        return 0;
    }
    struct file *f = fd_file((int)fd);
    if (!f) {
        *err = -EBADF;
        return 0;
    }
    if (!S_ISDIR(f->inode->mode) && (!f->ops || !(f->ops->flags & FOP_PREAD))) {
        *err = -ESPIPE;
        return 0;
    }
    return checked(f, write, err);
}

long sys_pread64(uint64_t fd, uint64_t buf, uint64_t count, uint64_t offset)
{
    long err;
    int64_t pos = (int64_t)offset;
    struct file *f = positional(fd, pos, 0, &err);
    return f ? do_rw(f, 0, buf, count, &pos) : err;
}

long sys_pread64_regs(struct regs *r)
{
    long err;
    int64_t pos = (int64_t)r->r10;
    struct file *f = positional(r->rdi, pos, 0, &err);
    if (!f)
        return err;
    uint64_t count = MIN(r->rdx, MAX_RW_COUNT);
    if (ramfs_read_through_window(f, r, r->rsi, count, &pos))
        return (long)((uint64_t)pos - r->r10);
    return do_rw(f, 0, r->rsi, count, &pos);
}

long sys_pwrite64(uint64_t fd, uint64_t buf, uint64_t count, uint64_t offset)
{
    long err;
    int64_t pos = (int64_t)offset;
    struct file *f = positional(fd, pos, 1, &err);
    return f ? do_rw(f, 1, buf, count, &pos) : err;
}

/* The iovec array, element by element: {base, len} pairs. */
static long do_rwv(struct file *f, int write, uint64_t iov, uint64_t iovcnt, int64_t *pos)
{
    if (iovcnt > UIO_MAXIOV)
        return -EINVAL;
    if (!user_ok(iov, iovcnt * 16, 0))
        return -EFAULT;
    const uint64_t *v = (const uint64_t *)iov;
    uint64_t total = 0;
    for (uint64_t i = 0; i < iovcnt; i++) {
        if ((int64_t)v[2 * i + 1] < 0 || (total += v[2 * i + 1]) > 0x7fffffffffffffffull)
            return -EINVAL;
    }
    uint64_t done = 0;
    for (uint64_t i = 0; i < iovcnt && done < MAX_RW_COUNT; i++) {
        uint64_t len = MIN(v[2 * i + 1], MAX_RW_COUNT - done);
        if (!len)
            continue;
        long r = do_rw(f, write, v[2 * i], len, pos);
        if (r < 0)
            return done ? (long)done : r;
        done += (uint64_t)r;
        if ((uint64_t)r < len)
            break;
    }
    return (long)done;
}

long sys_readv(uint64_t fd, uint64_t iov, uint64_t iovcnt)
{
    long err;
    struct file *f = file_for(fd, 0, &err);
    return f ? do_rwv(f, 0, iov, iovcnt, &f->pos) : err;
}

long sys_writev(uint64_t fd, uint64_t iov, uint64_t iovcnt)
{
    long err;
    struct file *f = file_for(fd, 1, &err);
    return f ? do_rwv(f, 1, iov, iovcnt, &f->pos) : err;
}

long sys_preadv(uint64_t fd, uint64_t iov, uint64_t iovcnt, uint64_t offset)
{
    long err;
    int64_t pos = (int64_t)offset;
    struct file *f = positional(fd, pos, 0, &err);
    return f ? do_rwv(f, 0, iov, iovcnt, &pos) : err;
}

long sys_pwritev(uint64_t fd, uint64_t iov, uint64_t iovcnt, uint64_t offset)
{
    long err;
    int64_t pos = (int64_t)offset;
    struct file *f = positional(fd, pos, 1, &err);
    return f ? do_rwv(f, 1, iov, iovcnt, &pos) : err;
}

long sys_lseek(uint64_t fd, uint64_t offset, uint64_t whence)
{
    struct file *f = fd_file((int)fd);
    if (!f)
        return -EBADF;
    int dir = S_ISDIR(f->inode->mode);
    if (!dir && f->ops && (f->ops->flags & FOP_SEEK_ZERO))
        return 0;
    if (!dir && (!f->ops || !(f->ops->flags & FOP_SEEKABLE)))
        return -ESPIPE;
    int64_t end = dir ? 0 : f->ops->end ? f->ops->end(f) : f->inode->size;
    int64_t base, off = (int64_t)offset;
    switch (whence) {
    case SEEK_SET: base = 0; break;
    case SEEK_CUR: base = f->pos; break;
    case SEEK_END: base = end; break;
    case SEEK_DATA:
    case SEEK_HOLE:                     /* holes are not reported: all data up to the end */
        if (dir || off < 0 || off >= end)
            return -ENXIO;
        base = 0;
        if (whence == SEEK_HOLE)
            off = end;
        break;
    default:
        return -EINVAL;
    }
    int64_t pos = (int64_t)((uint64_t)base + (uint64_t)off);    /* wraps: no undefined overflow */
    if (pos < 0 || (off > 0 && pos < base))
        return -EINVAL;
    f->pos = pos;
    return pos;
}

long sys_sendfile(uint64_t out_fd, uint64_t in_fd, uint64_t offset, uint64_t count)
{
    long err;
    struct file *in = file_for(in_fd, 0, &err), *out = in ? file_for(out_fd, 1, &err) : 0;
    if (!out)
        return err;
    err = 0;
    int64_t pos, *at = &in->pos;
    if (offset) {
        if (copy_from_user(&pos, offset, 8) < 0)
            return -EFAULT;
        if (pos < 0)
            return -EINVAL;
        if (!(in->ops->flags & FOP_PREAD))
            return -ESPIPE;
        at = &pos;
    }
    char *page = kmalloc(PAGE_SIZE);
    if (!page)
        return -ENOMEM;
    uint64_t done = 0;
    count = MIN(count, MAX_RW_COUNT);
    uaccess_kernel_begin();
    while (done < count) {
        long r = in->ops->read(in, (uint64_t)page, MIN(count - done, PAGE_SIZE), at);
        if (r <= 0) {
            err = r;
            break;
        }
        long w = out->ops->write(out, (uint64_t)page, (uint64_t)r, &out->pos);
        if (w < r) {                    /* give back what was read and not written */
            *at -= r - (w > 0 ? w : 0);
            if (w > 0)
                done += (uint64_t)w;
            err = w < 0 ? w : 0;
            break;
        }
        done += (uint64_t)w;
    }
    uaccess_kernel_end();
    kfree(page, PAGE_SIZE);
    if (offset && copy_to_user(offset, &pos, 8) < 0)
        return -EFAULT;
    return done ? (long)done : err;
}

long sys_fsync(uint64_t fd)
{
    struct file *f = fd_file((int)fd);
    if (!f || (f->flags & O_PATH))
        return -EBADF;
    return f->ops && f->ops->fsync ? f->ops->fsync(f) : 0;
}

long sys_ioctl(uint64_t fd, uint64_t cmd, uint64_t arg)
{
    struct file *f = fd_file((int)fd);
    if (!f || (f->flags & O_PATH))
        return -EBADF;
    switch (cmd) {
    case FIOCLEX:
    case FIONCLEX:
        fd_set_cloexec((int)fd, cmd == FIOCLEX);
        return 0;
    case FIONBIO: {
        int32_t on;
        if (copy_from_user(&on, arg, 4) < 0)
            return -EFAULT;
        f->flags = on ? f->flags | O_NONBLOCK : f->flags & ~(uint32_t)O_NONBLOCK;
        return 0;
    }
    default:
        return f->ops && f->ops->ioctl ? f->ops->ioctl(f, cmd, arg) : -ENOTTY;
    }
}
