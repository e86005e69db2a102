/*
 * Event counters: eventfd and eventfd2 (Linux's fs/eventfd.c semantics).
 * A read takes the whole 64-bit count (EFD_SEMAPHORE: one), waiting while
 * it is 0; a write adds to it, waiting while the sum would pass
 * 0xfffffffffffffffe.  Readable while the count is non-zero, writable while
 * 1 more fits.  Go's runtime writes one to wake its netpoller's epoll wait.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/wait.h"

#define EVENTFD_MAX 0xfffffffffffffffeull

struct eventfd {
    uint64_t count;
    uint32_t semaphore;
    struct waitq wait;
};

static long eventfd_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    struct eventfd *e = f->priv;
    if (count < 8)
        return -EINVAL;
    if (!e->count && (f->flags & O_NONBLOCK))
        return -EAGAIN;
    if (wait_event(&e->wait, e->count != 0))
        return restart_syscall();       /* again after SA_RESTART, as Linux */
    uint64_t v = e->semaphore ? 1 : e->count;
    if (copy_to_user(buf, &v, 8) < 0)
        return -EFAULT;
    e->count -= v;
    poll_wake(&e->wait);
    return 8;
}

static long eventfd_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    struct eventfd *e = f->priv;
    uint64_t v;
    if (count < 8)
        return -EINVAL;
    if (copy_from_user(&v, buf, 8) < 0)
        return -EFAULT;
    if (v == ~0ull)
        return -EINVAL;
    if (EVENTFD_MAX - e->count < v) {
        if (f->flags & O_NONBLOCK)
            return -EAGAIN;
        if (wait_event(&e->wait, EVENTFD_MAX - e->count >= v))
            return restart_syscall();
    }
    e->count += v;
    if (v)
        poll_wake(&e->wait);
    return 8;
}

static int eventfd_poll(struct file *f)
{
    struct eventfd *e = f->priv;
    return (e->count ? POLLIN | POLLRDNORM : 0) | (e->count < EVENTFD_MAX ? POLLOUT | POLLWRNORM : 0);
}

static void eventfd_release(struct file *f)
{
    kfree(f->priv, sizeof(struct eventfd));
}

static const struct file_ops eventfd_ops = {
    .read = eventfd_read,
    .write = eventfd_write,
    .poll = eventfd_poll,
    .release = eventfd_release,
};

long sys_eventfd2(uint64_t initval, uint64_t flags)
{
    if (flags & ~(uint64_t)(EFD_SEMAPHORE | EFD_NONBLOCK | EFD_CLOEXEC))
        return -EINVAL;
    struct eventfd *e = kzalloc(sizeof *e);
    struct file *f = e ? anon_file_new(&eventfd_ops, O_RDWR | ((uint32_t)flags & O_NONBLOCK), e) : 0;
    if (!f) {
        if (e)
            kfree(e, sizeof *e);
        return -ENOMEM;
    }
    e->count = (uint32_t)initval;
    e->semaphore = (flags & EFD_SEMAPHORE) != 0;
    return fd_install_new(f, (flags & EFD_CLOEXEC) != 0);
}

long sys_eventfd(uint64_t initval)
{
    return sys_eventfd2(initval, 0);
}
