/*
 * Pipes: pipe and pipe2.  One inode (S_IFIFO) per pipe and two open files,
 * its read end and its write end; readers and writers count the open files
 * of each end, so dup and fork (which share an open file) leave them as
 * they are, and the last close of an end is that file's release.
 *
 * The buffer is Linux's default, 64 KiB (16 pages, taken as they are first
 * written), used as a ring.  Linux's semantics (fs/pipe.c): a read returns
 * what is there (blocking while empty and a writer is left; 0 once none is);
 * a write of at most PIPE_BUF bytes goes in whole or waits; a larger one
 * goes in pieces as room appears; with no reader left, EPIPE and SIGPIPE.
 * Every blocking path is a wait_event on the pipe's queue, and every change
 * wakes it through poll_wake (poll, select and epoll sleep there too).
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/wait.h"

#define PIPE_PAGES 16
#define PIPE_SIZE  (PIPE_PAGES * PAGE_SIZE)

struct pipe {
    uint64_t page[PIPE_PAGES];          /* physical pages of the ring, 0 until used */
    uint32_t head, len;                 /* the bytes [head, head + len) mod PIPE_SIZE */
    uint32_t readers, writers;          /* open files of each end */
    struct waitq wait;                  /* readers and writers, both */
};

static uint32_t pipe_room(const struct pipe *p)
{
    return PIPE_SIZE - p->len;
}

/* Copy n bytes between user memory and the ring at offset off. */
static long ring_copy(struct pipe *p, uint32_t off, uint64_t ubuf, uint32_t n, int to_ring)
{
    while (n) {
        uint32_t in_page = off % PAGE_SIZE, chunk = MIN(n, (uint32_t)PAGE_SIZE - in_page);
        uint64_t *pa = &p->page[(off / PAGE_SIZE) % PIPE_PAGES];
        if (!*pa && !(*pa = alloc_page_unzeroed()))
            return -ENOMEM;
        char *k = (char *)phys_to_virt(*pa) + in_page;
        long r = to_ring ? copy_from_user(k, ubuf, chunk) : copy_to_user(ubuf, k, chunk);
        if (r < 0)
            return r;
        off += chunk;
        ubuf += chunk;
        n -= chunk;
    }
    return 0;
}

static long pipe_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    struct pipe *p = f->priv;
    if (count == 0)
        return 0;
    if (!p->len && p->writers && (f->flags & O_NONBLOCK))
        return -EAGAIN;
    if (wait_event(&p->wait, p->len || !p->writers))
        return restart_syscall();
    uint32_t n = (uint32_t)MIN(count, (uint64_t)p->len);
    if (!n)
        return 0;                       /* no writer left: end of file */
    long r = ring_copy(p, p->head, buf, n, 0);
    if (r < 0)
        return r;
    p->head = (p->head + n) % PIPE_SIZE;
    p->len -= n;
    poll_wake(&p->wait);
    return n;
}

static long broken_pipe(void)
{
    signal_send(current, SIGPIPE, SI_USER, 0);
    return -EPIPE;
}

static long pipe_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    struct pipe *p = f->priv;
    if (!p->readers)
        return broken_pipe();
    if (count == 0)
        return 0;
    if (!user_ok(buf, count, 0))
        return -EFAULT;
    uint64_t done = 0;
    /* A write of at most PIPE_BUF waits for room for all of it. */
    uint32_t need = count <= PIPE_BUF ? (uint32_t)count : 1;
    while (done < count) {
        if (pipe_room(p) < need) {
            if (f->flags & O_NONBLOCK)
                return done ? (long)done : -EAGAIN;
            if (wait_event(&p->wait, pipe_room(p) >= need || !p->readers))
                return done ? (long)done : restart_syscall();
        }
        if (!p->readers)
            return done ? (long)done : broken_pipe();
        uint32_t n = (uint32_t)MIN(count - done, (uint64_t)pipe_room(p));
        long r = ring_copy(p, (p->head + p->len) % PIPE_SIZE, buf + done, n, 1);
        if (r < 0)
            return done ? (long)done : r;
        p->len += n;
        done += n;
        poll_wake(&p->wait);
    }
    return (long)done;
}

static int pipe_poll(struct file *f)
{
    struct pipe *p = f->priv;
    int mask = 0;
    if ((f->flags & O_ACCMODE) == O_RDONLY) {
        if (p->len)
            mask |= POLLIN | POLLRDNORM;
        if (!p->writers)
            mask |= POLLHUP;
    } else {
        if (pipe_room(p) >= PIPE_BUF)
            mask |= POLLOUT | POLLWRNORM;
        if (!p->readers)
            mask |= POLLERR;
    }
    return mask;
}

static long pipe_ioctl(struct file *f, uint64_t cmd, uint64_t arg)
{
    struct pipe *p = f->priv;
    if (cmd != FIONREAD)
        return -ENOTTY;
    int32_t n = (int32_t)p->len;
    return copy_to_user(arg, &n, sizeof n);
}

static void pipe_release(struct file *f)
{
    struct pipe *p = f->priv;
    if ((f->flags & O_ACCMODE) == O_RDONLY)
        p->readers--;
    else
        p->writers--;
    poll_wake(&p->wait);                /* EOF for readers, EPIPE for writers */
    if (p->readers || p->writers)
        return;
    for (int i = 0; i < PIPE_PAGES; i++)
        if (p->page[i])
            free_page(p->page[i]);
    kfree(p, sizeof *p);
}

static const struct file_ops pipe_ops = {
    .read = pipe_read,
    .write = pipe_write,
    .ioctl = pipe_ioctl,
    .poll = pipe_poll,
    .release = pipe_release,
};

long pipe_size(struct file *f)
{
    return f->ops == &pipe_ops ? PIPE_SIZE : -EBADF;
}

long sys_pipe2(uint64_t ufds, uint64_t flags)
{
    if (flags & ~(uint64_t)(O_CLOEXEC | O_NONBLOCK | O_DIRECT))
        return -EINVAL;
    struct inode *ino = inode_new(S_IFIFO | 0600);
    if (!ino)
        return -ENOMEM;
    inode_get(ino);                     /* held here until both ends hold it */
    struct pipe *p = kzalloc(sizeof *p);
    uint32_t status = (uint32_t)flags & (O_NONBLOCK | O_DIRECT);
    struct file *rd = p ? file_with_ops(ino, &pipe_ops, O_RDONLY | status, p) : 0;
    struct file *wr = rd ? file_with_ops(ino, &pipe_ops, O_WRONLY | status, p) : 0;
    inode_put(ino);
    if (!wr) {
        if (rd)
            rd->ops = 0, file_put(rd);  /* no release: the pipe never opened */
        if (p)
            kfree(p, sizeof *p);
        return -ENOMEM;
    }
    p->readers = p->writers = 1;
    int cloexec = (flags & O_CLOEXEC) != 0;
    int fd0 = fd_install(rd, cloexec, 0);
    if (fd0 < 0) {
        file_put(rd);
        file_put(wr);
        return fd0;
    }
    int fd1 = fd_install(wr, cloexec, 0);
    if (fd1 < 0) {
        fd_close(fd0);
        file_put(wr);
        return fd1;
    }
    int32_t fds[2] = { fd0, fd1 };
    if (copy_to_user(ufds, fds, sizeof fds) < 0) {
        fd_close(fd0);
        fd_close(fd1);
        return -EFAULT;
    }
    return 0;
}

long sys_pipe(uint64_t ufds)
{
    return sys_pipe2(ufds, 0);
}
