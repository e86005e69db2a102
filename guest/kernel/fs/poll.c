/*
 * Waiting for descriptors: poll, ppoll, select, pselect6.  Files of the RAM
 * file system and most devices are always ready; the console is readable
 * when its ring holds a byte; pipes and eventfds by their contents.  Every
 * file's readiness comes from one function (its poll op), and a wait (here
 * and in epoll.c) sleeps on one queue, poll_waiters, that every change of
 * any file's readiness wakes (poll_wake).  A wait with a deadline sleeps
 * on tick_wq instead (the scheduler wakes it every tick, and poll_wake
 * wakes it too), so that it also ends within a tick of its deadline.
 * ppoll and pselect6 install their signal mask for the wait (signal.c).
 */
#include "clock.h"
#include "fs/vfs.h"
#include "irq.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/wait.h"

#define FD_SETSIZE 1024
#define NO_DEADLINE (~0ull)
#define READY_ALWAYS (POLLIN | POLLOUT | POLLRDNORM | POLLWRNORM)

struct pollfd_k {
    int32_t fd;
    int16_t events, revents;
};

struct waitq poll_waiters;

void poll_wake(struct waitq *q)
{
    if (q)
        wake_up(q);
    wake_up(&poll_waiters);
    wake_up(&tick_wq);                  /* the waits with a deadline */
}

struct waitq *poll_queue(uint64_t deadline)
{
    return deadline == NO_DEADLINE ? &poll_waiters : &tick_wq;
}

int file_ready(struct file *f)
{
    return f->ops && f->ops->poll ? f->ops->poll(f) : READY_ALWAYS;
}

static int timed_out(uint64_t deadline)
{
    return deadline != NO_DEADLINE && clock_ns() >= deadline;
}

/* A user timespec (or NULL: none) into an absolute deadline; 0 or -errno. */
static long deadline_of(uint64_t ts, uint64_t *deadline)
{
    *deadline = NO_DEADLINE;
    if (!ts)
        return 0;
    int64_t t[2];
    if (copy_from_user(t, ts, sizeof t) < 0)
        return -EFAULT;
    if (t[0] < 0 || t[1] < 0 || (uint64_t)t[1] >= NSEC_PER_SEC)
        return -EINVAL;
    *deadline = clock_ns() + (uint64_t)t[0] * NSEC_PER_SEC + (uint64_t)t[1];
    return 0;
}

/* One pass over the pollfds: how many have events. */
static long poll_once(struct pollfd_k *p, uint64_t nfds)
{
    long count = 0;
    for (uint64_t i = 0; i < nfds; i++) {
        p[i].revents = 0;
        if (p[i].fd < 0)
            continue;
        struct file *f = fd_file(p[i].fd);
        int mask = f ? file_ready(f) : POLLNVAL;
        p[i].revents = (int16_t)(mask & (p[i].events | POLLERR | POLLHUP | POLLNVAL));
        if (p[i].revents)
            count++;
    }
    return count;
}

static long do_poll(uint64_t ufds, uint64_t nfds, uint64_t deadline)
{
    if (nfds > current->rlim_cur[RLIMIT_NOFILE])
        return -EINVAL;
    if (!user_ok(ufds, nfds * sizeof(struct pollfd_k), 1))
        return -EFAULT;
    struct pollfd_k *p = (struct pollfd_k *)ufds;
    long count = 0;
    long err = wait_event(poll_queue(deadline), (count = poll_once(p, nfds)) || deadline == 0 || timed_out(deadline));
    return count ? count : err;
}

long sys_poll(uint64_t fds, uint64_t nfds, uint64_t timeout_ms)
{
    int64_t ms = (int32_t)timeout_ms;
    return do_poll(fds, nfds, ms < 0 ? NO_DEADLINE : ms == 0 ? 0 : clock_ns() + (uint64_t)ms * 1000000);
}

long sys_ppoll(uint64_t fds, uint64_t nfds, uint64_t ts, uint64_t sigmask, uint64_t sigsetsize)
{
    uint64_t deadline;
    long r = deadline_of(ts, &deadline);
    if (r || (r = signal_mask_for_wait(sigmask, sigsetsize)))
        return r;
    if (ts && deadline <= clock_ns())
        deadline = 0;
    r = do_poll(fds, nfds, deadline);
    signal_mask_after_wait(r);
    return r;
}

#define NO_FILE (-1)

/* One pass over the fd_sets in[] into out[]: how many bits, or NO_FILE. */
static long select_once(int64_t nfds, uint64_t in[3][FD_SETSIZE / 64], uint64_t out[3][FD_SETSIZE / 64])
{
    static const int ready[3] = { POLLIN | POLLHUP | POLLERR, POLLOUT | POLLERR, POLLPRI };
    long count = 0;
    memset(out, 0, 3 * FD_SETSIZE / 8);
    for (int64_t fd = 0; fd < nfds; fd++) {
        uint64_t bit = 1ull << (fd % 64);
        if (!((in[0][fd / 64] | in[1][fd / 64] | in[2][fd / 64]) & bit))
            continue;
        struct file *f = fd_file((int)fd);
        if (!f)
            return NO_FILE;
        int mask = file_ready(f);
        for (int k = 0; k < 3; k++) {
            if ((in[k][fd / 64] & bit) && (mask & ready[k])) {
                out[k][fd / 64] |= bit;
                count++;
            }
        }
    }
    return count;
}

/* The fd_sets (nfds bits each, or NULL) in and out of user memory. */
static long do_select(int64_t nfds, uint64_t sets[3], uint64_t deadline)
{
    if (nfds < 0)
        return -EINVAL;
    nfds = MIN(nfds, (int64_t)FD_SETSIZE);
    uint64_t words = ((uint64_t)nfds + 63) / 64, in[3][FD_SETSIZE / 64] = { { 0 } };
    uint64_t out[3][FD_SETSIZE / 64];
    for (int k = 0; k < 3; k++)
        if (sets[k] && copy_from_user(in[k], sets[k], words * 8) < 0)
            return -EFAULT;
    long count = 0;
    long err = wait_event(poll_queue(deadline), (count = select_once(nfds, in, out)) || deadline == 0 || timed_out(deadline));
    if (count == NO_FILE)
        return -EBADF;
    if (!count && err)
        return err;
    for (int k = 0; k < 3; k++)
        if (sets[k] && copy_to_user(sets[k], out[k], words * 8) < 0)
            return -EFAULT;
    return count;
}

long sys_select(uint64_t nfds, uint64_t r, uint64_t w, uint64_t e, uint64_t tv)
{
    uint64_t sets[3] = { r, w, e }, deadline = NO_DEADLINE;
    if (tv) {
        int64_t t[2];
        if (copy_from_user(t, tv, sizeof t) < 0)
            return -EFAULT;
        if (t[0] < 0 || t[1] < 0)
            return -EINVAL;
        deadline = (t[0] || t[1]) ? clock_ns() + (uint64_t)t[0] * NSEC_PER_SEC + (uint64_t)t[1] * NSEC_PER_USEC : 0;
    }
    return do_select((int64_t)(int32_t)nfds, sets, deadline);
}

long sys_pselect6(uint64_t nfds, uint64_t r, uint64_t w, uint64_t e, uint64_t ts, uint64_t sig)
{
    uint64_t sets[3] = { r, w, e }, deadline, mask[2] = { 0, 0 };     /* { sigset pointer, its size } */
    long err = deadline_of(ts, &deadline);
    if (err)
        return err;
    if (sig && copy_from_user(mask, sig, sizeof mask) < 0)
        return -EFAULT;
    if ((err = signal_mask_for_wait(mask[0], mask[1])))
        return err;
    if (ts && deadline <= clock_ns())
        deadline = 0;
    err = do_select((int64_t)(int32_t)nfds, sets, deadline);
    signal_mask_after_wait(err);
    return err;
}
