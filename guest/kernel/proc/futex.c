/*
 * Fast user-space mutexes: futex(2) WAIT, WAKE, REQUEUE, CMP_REQUEUE,
 * WAKE_OP, WAIT_BITSET and WAKE_BITSET, private and shared, with timeouts;
 * and what a thread's exit does to them (the robust list, clear_child_tid).
 *
 * A waiter lives on its own kernel stack while it sleeps, in a bucket of a
 * small hash table by key: for a private futex the address space and the
 * address, for a shared one the physical address of the word (the same
 * page seen through any mapping).  A waker takes waiters off the list and
 * marks them woken before waking their queue, so the count it returns is
 * exact and a waiter that times out (or takes a signal) after being woken
 * still reports the wake-up.  The kernel runs with interrupts off, so the
 * check of the word and the queueing are atomic with respect to wakers.
 */
#include "clock.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/futex.h"
#include "proc/wait.h"
#include "uapi.h"

#define FUTEX_BUCKETS 64                /* a power of two */
#define FUTEX_SHARED_MM 0               /* key.mm of a shared futex: no address space */
#define NO_DEADLINE (~0ull)
#define ROBUST_LIST_HEAD_SIZE 24        /* struct robust_list_head: list, futex_offset, list_op_pending */

struct futex_key {
    uint64_t mm, addr;
};

struct futex_waiter {
    struct futex_key key;
    uint32_t bitset;
    int woken;
    struct task *task;
    struct waitq q;             /* where it sleeps without a deadline (with one: tick_wq) */
    struct futex_waiter *next;
};

static struct futex_waiter *buckets[FUTEX_BUCKETS];

static struct futex_waiter **bucket_of(const struct futex_key *k)
{
    uint64_t h = (k->addr >> 2) ^ (k->mm >> 6) ^ (k->addr >> 14);
    return &buckets[h & (FUTEX_BUCKETS - 1)];
}

static int key_equal(const struct futex_key *a, const struct futex_key *b)
{
    return a->mm == b->mm && a->addr == b->addr;
}

/* The key of the word at uaddr: 0, -EINVAL (misaligned) or -EFAULT.  As
 * in Linux, a private key needs only a user address; a shared one needs
 * the page (faulted in here). */
static long futex_key_of(uint64_t uaddr, int private, struct futex_key *k)
{
    if (uaddr & 3)
        return -EINVAL;
    if (uaddr >= USER_CANONICAL_END - 4)
        return -EFAULT;
    if (private) {
        k->mm = (uint64_t)current->mm;
        k->addr = uaddr;
        return 0;
    }
    if (!user_ok(uaddr, 4, 0))
        return -EFAULT;
    uint64_t *pte = pte_lookup(current->mm, uaddr, 0);
    if (!pte || !(*pte & PTE_P))
        return -EFAULT;
    k->mm = FUTEX_SHARED_MM;
    k->addr = (*pte & PTE_ADDR_MASK) | (uaddr & (PAGE_SIZE - 1));
    return 0;
}

static void unlink_waiter(struct futex_waiter *w)
{
    for (struct futex_waiter **p = bucket_of(&w->key); *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            return;
        }
}

/* Wake up to nr waiters on k whose bitset meets `bitset`; requeue up to
 * nr_requeue of the rest onto `to` (if given).  Returns woken + requeued. */
static long wake_and_requeue(const struct futex_key *k, long nr, uint32_t bitset,
                             const struct futex_key *to, long nr_requeue)
{
    long woken = 0, moved = 0;
    struct futex_waiter *w, **p = bucket_of(k), *requeue = 0;
    while ((w = *p) != 0) {
        if (!key_equal(&w->key, k) || !(w->bitset & bitset)) {
            p = &w->next;
            continue;
        }
        if (woken < nr) {
            *p = w->next;
            w->woken = 1;
            task_wake(w->task);         /* whichever queue it sleeps on */
            woken++;
        } else if (to && moved < nr_requeue) {
            *p = w->next;
            w->next = requeue;          /* collected first: `to` may share this bucket */
            requeue = w;
            moved++;
        } else {
            p = &w->next;
        }
    }
    while ((w = requeue) != 0) {        /* the order of arrival is kept, reversed twice */
        requeue = w->next;
        w->key = *to;
        struct futex_waiter **q = bucket_of(to);
        while (*q)
            q = &(*q)->next;
        w->next = 0;
        *q = w;
    }
    return woken + moved;
}

long futex_wake(uint64_t uaddr, int private, long nr)
{
    struct futex_key k;
    long err = futex_key_of(uaddr, private, &k);
    return err ? err : wake_and_requeue(&k, nr, FUTEX_BITSET_MATCH_ANY, 0, 0);
}

/* The deadline in nanoseconds since boot (clock_ns) from a user timespec:
 * relative, or absolute on CLOCK_MONOTONIC or (realtime) on the wall clock. */
static long futex_deadline(uint64_t uts, int absolute, int realtime, uint64_t *deadline)
{
    int64_t ts[2];
    if (!uts) {
        *deadline = NO_DEADLINE;
        return 0;
    }
    if (copy_from_user(ts, uts, sizeof ts) < 0)
        return -EFAULT;
    if (ts[0] < 0 || ts[1] < 0 || (uint64_t)ts[1] >= NSEC_PER_SEC)
        return -EINVAL;
    uint64_t sec = MIN((uint64_t)ts[0], 1ull << 32), ns = sec * NSEC_PER_SEC + (uint64_t)ts[1];
    uint64_t now = clock_ns();
    if (!absolute) {
        *deadline = now + ns;
    } else if (realtime) {
        uint64_t rs, rn;
        clock_realtime(&rs, &rn);
        uint64_t real_now = rs * NSEC_PER_SEC + rn;
        *deadline = ns <= real_now ? now : now + (ns - real_now);
    } else {
        *deadline = ns;
    }
    return 0;
}

static long futex_wait(uint64_t uaddr, int private, uint32_t val, uint64_t deadline, uint32_t bitset)
{
    struct futex_waiter w = { .bitset = bitset, .task = current };
    long err = futex_key_of(uaddr, private, &w.key);
    if (err)
        return err;
    if (!user_ok(uaddr, 4, 0))
        return -EFAULT;
    if (*(volatile uint32_t *)uaddr != val)
        return -EAGAIN;
    struct futex_waiter **b = bucket_of(&w.key);
    while (*b)
        b = &(*b)->next;
    *b = &w;
    for (;;) {
        if (w.woken)
            return 0;
        if (signal_pending()) {
            err = deadline == NO_DEADLINE ? restart_syscall() : -EINTR;    /* as Linux */
            break;
        }
        if (deadline != NO_DEADLINE && clock_ns() >= deadline) {
            err = -ETIMEDOUT;
            break;
        }
        waitq_sleep(deadline == NO_DEADLINE ? &w.q : &tick_wq);
    }
    unlink_waiter(&w);
    return err;
}

/* FUTEX_WAKE_OP: *uaddr2 = *uaddr2 OP oparg; wake nr on uaddr, and nr2 on
 * uaddr2 if the old value compared with cmparg holds. */
static long futex_wake_op(uint64_t uaddr, int private, long nr, uint64_t uaddr2, long nr2, uint32_t encoded)
{
    uint32_t op = encoded >> 28 & 7, cmp = encoded >> 24 & 15;
    uint32_t oparg = encoded >> 12 & 0xfff, cmparg = encoded & 0xfff;
    if (encoded >> 31)                  /* FUTEX_OP_OPARG_SHIFT */
        oparg = oparg < 32 ? 1u << oparg : 0;
    struct futex_key k1, k2;
    long err = futex_key_of(uaddr, private, &k1);
    if (!err)
        err = futex_key_of(uaddr2, private, &k2);
    if (err)
        return err;
    if (!user_ok(uaddr2, 4, 1))
        return -EFAULT;
    volatile uint32_t *word = (volatile uint32_t *)uaddr2;
    uint32_t old = *word;
    switch (op) {
    case 0: *word = oparg; break;       /* SET */
    case 1: *word = old + oparg; break; /* ADD */
    case 2: *word = old | oparg; break; /* OR */
    case 3: *word = old & ~oparg; break;/* ANDN */
    case 4: *word = old ^ oparg; break; /* XOR */
    default: return -ENOSYS;
    }
    int hit;
    switch (cmp) {
    case 0: hit = old == cmparg; break;
    case 1: hit = old != cmparg; break;
    case 2: hit = (int32_t)old < (int32_t)cmparg; break;
    case 3: hit = (int32_t)old <= (int32_t)cmparg; break;
    case 4: hit = (int32_t)old > (int32_t)cmparg; break;
    case 5: hit = (int32_t)old >= (int32_t)cmparg; break;
    default: return -ENOSYS;
    }
    long n = wake_and_requeue(&k1, nr, FUTEX_BITSET_MATCH_ANY, 0, 0);
    if (hit)
        n += wake_and_requeue(&k2, nr2, FUTEX_BITSET_MATCH_ANY, 0, 0);
    return n;
}

long sys_futex(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t utime, uint64_t uaddr2, uint64_t val3)
{
    int private = (op & FUTEX_PRIVATE_FLAG) != 0, realtime = (op & FUTEX_CLOCK_REALTIME) != 0;
    uint32_t cmd = (uint32_t)op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    if (realtime && cmd != FUTEX_WAIT_BITSET)
        return -ENOSYS;                 /* as Linux 6 (its man page still names FUTEX_WAIT) */
    long nr = (long)(uint32_t)val, nr2 = (long)(uint32_t)utime;    /* val2 rides in the timeout */
    uint64_t deadline;
    long err;
    switch (cmd) {
    case FUTEX_WAIT:
    case FUTEX_WAIT_BITSET:
        if (cmd == FUTEX_WAIT_BITSET && !(uint32_t)val3)
            return -EINVAL;
        if ((err = futex_deadline(utime, cmd == FUTEX_WAIT_BITSET, realtime, &deadline)))
            return err;
        return futex_wait(uaddr, private, (uint32_t)val, deadline,
                          cmd == FUTEX_WAIT ? FUTEX_BITSET_MATCH_ANY : (uint32_t)val3);
    case FUTEX_WAKE:
    case FUTEX_WAKE_BITSET: {
        uint32_t bitset = cmd == FUTEX_WAKE ? FUTEX_BITSET_MATCH_ANY : (uint32_t)val3;
        if (!bitset)
            return -EINVAL;
        struct futex_key k;
        if ((err = futex_key_of(uaddr, private, &k)))
            return err;
        return wake_and_requeue(&k, (int32_t)val > 0 ? nr : 1, bitset, 0, 0);    /* Linux: at least one */
    }
    case FUTEX_REQUEUE:
    case FUTEX_CMP_REQUEUE: {
        if ((int32_t)val < 0 || (int32_t)utime < 0)
            return -EINVAL;
        struct futex_key k1, k2;
        if ((err = futex_key_of(uaddr, private, &k1)) || (err = futex_key_of(uaddr2, private, &k2)))
            return err;
        if (cmd == FUTEX_CMP_REQUEUE && !user_ok(uaddr, 4, 0))
            return -EFAULT;
        if (cmd == FUTEX_CMP_REQUEUE && *(volatile uint32_t *)uaddr != (uint32_t)val3)
            return -EAGAIN;
        return wake_and_requeue(&k1, nr, FUTEX_BITSET_MATCH_ANY, &k2, nr2);
    }
    case FUTEX_WAKE_OP:
        return futex_wake_op(uaddr, private, nr, uaddr2, nr2, (uint32_t)val3);
    default:
        return -ENOSYS;                 /* the priority-inheritance operations */
    }
}

/* get_robust_list(pid, head_ptr, len_ptr): musl's pthread_mutexattr_setrobust
 * asks it whether the kernel has robust lists at all. */
long sys_get_robust_list(uint64_t pid, uint64_t head_ptr, uint64_t len_ptr)
{
    struct task *t = pid ? task_by_pid((int)pid) : current;
    if (!t)
        return -ESRCH;
    uint64_t len = ROBUST_LIST_HEAD_SIZE;
    if (copy_to_user(len_ptr, &len, 8) < 0 || copy_to_user(head_ptr, &t->robust_list, 8) < 0)
        return -EFAULT;
    return 0;
}

/* A thread ends: for each robust mutex it still holds, mark the owner dead
 * and wake a waiter (Linux's handle_futex_death); then clear_child_tid. */
static void robust_futex_death(uint64_t uaddr, int tid)
{
    if ((uaddr & 3) || !user_ok(uaddr, 4, 1))
        return;
    volatile uint32_t *word = (volatile uint32_t *)uaddr;
    uint32_t v = *word;
    if ((v & FUTEX_TID_MASK) != (uint32_t)tid)
        return;
    *word = (v & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
    if (v & FUTEX_WAITERS)
        futex_wake(uaddr, 0, 1);
}

void futex_exit_release(struct task *t)
{
    uint64_t head[3];                   /* list, futex_offset, list_op_pending */
    if (t->robust_list && copy_from_user(head, t->robust_list, sizeof head) == 0) {
        uint64_t entry = head[0], pending = head[2] & ~1ull;
        for (int n = 0; entry != t->robust_list && n < ROBUST_LIST_LIMIT; n++) {
            uint64_t next;
            if (copy_from_user(&next, entry & ~1ull, 8) < 0)
                break;
            if ((entry & ~1ull) != pending)
                robust_futex_death((entry & ~1ull) + head[1], t->pid);
            entry = next;
        }
        if (pending)
            robust_futex_death(pending + head[1], t->pid);
        t->robust_list = 0;
    }
    if (t->clear_child_tid) {
        static const uint32_t zero = 0;
        if (copy_to_user(t->clear_child_tid, &zero, 4) == 0)
            futex_wake(t->clear_child_tid, 0, 1);
        t->clear_child_tid = 0;
    }
}
