/*
 * epoll: epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait.
 *
 * An instance keeps a list of watched (fd, open file) items; a wait asks
 * each item's file for its readiness (the same poll op that poll and select
 * use) and sleeps where poll does (poll_queue, poll.c), which every change
 * of any file's readiness wakes.  Level-triggered items report while ready;
 * EPOLLET items report when a bit they watch becomes set (was clear when
 * the last wait looked), which is what a reader that drains the file to
 * EAGAIN relies on; unlike Linux, more data on a pipe that stayed readable
 * is not a new edge.  EPOLLONESHOT items are
 * disabled after one report until EPOLL_CTL_MOD.  Files that cannot be
 * polled (regular files, most devices) are refused with EPERM, as Linux
 * refuses them.  An item goes when its open file is finally closed
 * (epoll_forget), not when one of its descriptors is.
 */
#include "clock.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/wait.h"

#define EPOLL_NESTING 4                 /* epoll in epoll: how deep poll looks */

struct epoll_event_k {
    uint32_t events;
    uint64_t data;
} __attribute__((packed));              /* x86-64's layout: 12 bytes */

struct epitem {
    struct epitem *next;
    struct file *file;
    int fd;
    uint32_t events;                    /* wanted, with EPOLLET / EPOLLONESHOT */
    uint64_t data;
    uint32_t last;                      /* EPOLLET: the mask when a wait last looked */
};

struct eventpoll {
    struct eventpoll *next;             /* every instance, for epoll_forget */
    struct epitem *items;
};

static struct eventpoll *instances;

static const struct file_ops epoll_ops;

/* The watched events an item's file has now (before the EPOLLET filter). */
static uint32_t item_mask(struct epitem *it)
{
    uint32_t wanted = it->events & ~(EPOLLET | EPOLLONESHOT | EPOLLEXCLUSIVE | EPOLLWAKEUP);
    if (!wanted && (it->events & EPOLLONESHOT))
        return 0;                       /* disarmed */
    return (uint32_t)file_ready(it->file) & (wanted | POLLERR | POLLHUP);
}

/* What an item has to report now (0: nothing). */
static uint32_t item_events(struct epitem *it)
{
    uint32_t mask = item_mask(it);
    return (it->events & EPOLLET) && !(mask & ~it->last) ? 0 : mask;
}

static int epoll_poll(struct file *f)
{
    static int depth;
    if (depth >= EPOLL_NESTING)
        return 0;
    depth++;
    int mask = 0;
    for (struct epitem *it = ((struct eventpoll *)f->priv)->items; it && !mask; it = it->next)
        if (item_events(it))
            mask = POLLIN | POLLRDNORM;
    depth--;
    return mask;
}

static void item_free(struct epitem *it)
{
    it->file->epoll_items--;
    kfree(it, sizeof *it);
}

static void epoll_release(struct file *f)
{
    struct eventpoll *ep = f->priv;
    while (ep->items) {
        struct epitem *it = ep->items;
        ep->items = it->next;
        item_free(it);
    }
    for (struct eventpoll **pp = &instances; *pp; pp = &(*pp)->next) {
        if (*pp == ep) {
            *pp = ep->next;
            break;
        }
    }
    kfree(ep, sizeof *ep);
}

static const struct file_ops epoll_ops = {
    .poll = epoll_poll,
    .release = epoll_release,
};

void epoll_forget(struct file *f)
{
    for (struct eventpoll *ep = instances; ep && f->epoll_items; ep = ep->next) {
        for (struct epitem **pp = &ep->items; *pp;) {
            struct epitem *it = *pp;
            if (it->file == f) {
                *pp = it->next;
                item_free(it);
            } else {
                pp = &it->next;
            }
        }
    }
}

long sys_epoll_create1(uint64_t flags)
{
    if (flags & ~(uint64_t)O_CLOEXEC)
        return -EINVAL;
    struct eventpoll *ep = kzalloc(sizeof *ep);
    struct file *f = ep ? anon_file_new(&epoll_ops, O_RDWR, ep) : 0;
    if (!f) {
        if (ep)
            kfree(ep, sizeof *ep);
        return -ENOMEM;
    }
    ep->next = instances;
    instances = ep;
    return fd_install_new(f, (flags & O_CLOEXEC) != 0);
}

long sys_epoll_create(uint64_t size)
{
    return (int32_t)size <= 0 ? -EINVAL : sys_epoll_create1(0);
}

static struct eventpoll *epoll_of(uint64_t epfd, long *err)
{
    struct file *f = fd_file((int)epfd);
    *err = !f ? -EBADF : f->ops != &epoll_ops ? -EINVAL : 0;
    return *err ? 0 : f->priv;
}

long sys_epoll_ctl(uint64_t epfd, uint64_t op, uint64_t fd, uint64_t uevent)
{
    struct epoll_event_k ev = { 0, 0 };
    if (op != EPOLL_CTL_DEL && copy_from_user(&ev, uevent, sizeof ev) < 0)
        return -EFAULT;
    long err;
    struct eventpoll *ep = epoll_of(epfd, &err);
    struct file *tf = fd_file((int)fd);
    if (!fd_file((int)epfd) || !tf)
        return -EBADF;
    if (!tf->ops || !tf->ops->poll)
        return -EPERM;
    if (!ep || (int)fd == (int)epfd)
        return -EINVAL;
    struct epitem **pp = &ep->items;
    while (*pp && !((*pp)->file == tf && (*pp)->fd == (int)fd))
        pp = &(*pp)->next;
    switch (op) {
    case EPOLL_CTL_ADD: {
        if (*pp)
            return -EEXIST;
        struct epitem *it = kzalloc(sizeof *it);
        if (!it)
            return -ENOMEM;
        *it = (struct epitem){ 0, tf, (int)fd, ev.events, ev.data, 0 };
        tf->epoll_items++;
        *pp = it;                       /* at the end: reported in the order added */
        poll_wake(0);                   /* a waiter on this instance may now be ready */
        return 0;
    }
    case EPOLL_CTL_MOD:
        if (!*pp)
            return -ENOENT;
        if (ev.events & EPOLLEXCLUSIVE)
            return -EINVAL;
        (*pp)->events = ev.events;
        (*pp)->data = ev.data;
        (*pp)->last = 0;
        poll_wake(0);
        return 0;
    case EPOLL_CTL_DEL: {
        struct epitem *it = *pp;
        if (!it)
            return -ENOENT;
        *pp = it->next;
        item_free(it);
        return 0;
    }
    default:
        return -EINVAL;
    }
}

/* Fill up to max events; how many. */
static long harvest(struct eventpoll *ep, struct epoll_event_k *out, int max)
{
    long n = 0;
    for (struct epitem *it = ep->items; it && n < max; it = it->next) {
        uint32_t mask = item_events(it);
        it->last = item_mask(it);
        if (!mask)
            continue;
        out[n].events = mask;
        out[n].data = it->data;
        n++;
        if (it->events & EPOLLONESHOT)
            it->events &= EPOLLET | EPOLLONESHOT;
    }
    return n;
}

static long do_epoll_wait(uint64_t epfd, uint64_t uevents, int64_t maxevents, uint64_t deadline)
{
    if (maxevents <= 0 || maxevents > (int64_t)EPOLL_MAXEVENTS)
        return -EINVAL;
    if (!user_ok(uevents, (uint64_t)maxevents * sizeof(struct epoll_event_k), 1))
        return -EFAULT;
    long err;
    struct eventpoll *ep = epoll_of(epfd, &err);
    if (!ep)
        return err;
    struct epoll_event_k *out = (struct epoll_event_k *)uevents;
    long n = 0;
    err = wait_event(poll_queue(deadline), (n = harvest(ep, out, (int)maxevents)) || deadline == 0 ||
                                    (deadline != ~0ull && clock_ns() >= deadline));
    return n ? n : err;
}

static uint64_t deadline_ms(int64_t ms)
{
    return ms < 0 ? ~0ull : ms == 0 ? 0 : clock_ns() + (uint64_t)ms * 1000000;
}

long sys_epoll_wait(uint64_t epfd, uint64_t events, uint64_t maxevents, uint64_t timeout)
{
    return do_epoll_wait(epfd, events, (int32_t)maxevents, deadline_ms((int32_t)timeout));
}

/* With the caller's signal mask for the wait, as ppoll. */
long sys_epoll_pwait(uint64_t epfd, uint64_t events, uint64_t maxevents, uint64_t timeout, uint64_t sigmask,
                     uint64_t sigsetsize)
{
    long r = signal_mask_for_wait(sigmask, sigsetsize);
    if (r)
        return r;
    r = sys_epoll_wait(epfd, events, maxevents, timeout);
    signal_mask_after_wait(r);
    return r;
}
