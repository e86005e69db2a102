/*
 * alarm, setitimer, getitimer: ITIMER_REAL, one per process (kept in its
 * leader, shared by its threads), counted in CLOCK_MONOTONIC nanoseconds
 * and checked at the PIT tick, so it fires within a tick of its deadline.
 * When it fires, SIGALRM goes to the process (si_code SI_KERNEL, as Linux),
 * and a periodic one is re-armed from its deadline (no drift).
 *
 * Nothing armed costs nothing: traps.S irq_timer reads itimer_armed with
 * runq_head and tick_wq, and only then comes to C (sched.c).  While armed,
 * a tick costs one clock read and a compare against the earliest deadline;
 * the task list is walked only when that deadline has passed.
 *
 * ITIMER_VIRTUAL and ITIMER_PROF need per-process CPU time, which this
 * kernel does not count: they read as disarmed, disarming them succeeds,
 * and arming them is EINVAL.
 */
#include "clock.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/itimer.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "uapi.h"

#define KTIME_MAX 0x7fffffffffffffffull  /* Linux's limit on a timer's time (~292 years) */

uint64_t itimer_armed;                  /* processes with ITIMER_REAL armed (traps.S reads it) */
static uint64_t itimer_next;            /* the earliest deadline among them */

struct k_timeval { int64_t sec, usec; };
struct k_itimerval { struct k_timeval interval, value; };

static void recompute_next(void)
{
    uint64_t next = KTIME_MAX;
    for (struct task *t = all_tasks; t; t = t->all_next)
        if (t->itimer_deadline && t->itimer_deadline < next)
            next = t->itimer_deadline;
    itimer_next = next;
}

/* Arm (deadline != 0) or disarm p's timer, keeping the count and the
 * earliest deadline. */
static void set_deadline(struct task *p, uint64_t deadline, uint64_t interval_ns)
{
    itimer_armed += (deadline != 0) - (p->itimer_deadline != 0);
    p->itimer_deadline = deadline;
    p->itimer_interval = interval_ns;
    if (deadline && deadline < itimer_next)
        itimer_next = deadline;
    else if (!itimer_armed)
        itimer_next = KTIME_MAX;
}

static uint64_t add_capped(uint64_t a, uint64_t b)
{
    return b > KTIME_MAX - a ? KTIME_MAX : a + b;
}

/* The tick (sched.c), only while itimer_armed. */
void itimer_tick(void)
{
    uint64_t now = clock_ns();
    if (now < itimer_next)
        return;
    for (struct task *t = all_tasks; t; t = t->all_next) {
        if (!t->itimer_deadline || t->itimer_deadline > now)
            continue;
        uint64_t next = 0;
        if (t->itimer_interval) {       /* periodic: the next period after now */
            next = add_capped(t->itimer_deadline, t->itimer_interval);
            if (next <= now)            /* ticks were missed: skip them, as Linux's overrun */
                next = add_capped(now, t->itimer_interval);
        }
        set_deadline(t, next, t->itimer_interval);
        struct task *to = thread_for_signal(t, SIGALRM);
        signal_send(to, SIGALRM, SI_KERNEL, 0);
        task_wake(to);      /* signal_send does not wake current, which may sleep in schedule()'s idle loop */
    }
    recompute_next();
}

/* The process ends (exit.c, its last task): the timer goes with it. */
void itimer_process_exit(struct task *leader)
{
    if (leader->itimer_deadline) {
        set_deadline(leader, 0, 0);
        recompute_next();
    }
}

static uint64_t timeval_ns(const struct k_timeval *tv)
{
    if ((uint64_t)tv->sec >= KTIME_MAX / NSEC_PER_SEC)
        return KTIME_MAX;
    return (uint64_t)tv->sec * NSEC_PER_SEC + (uint64_t)tv->usec * NSEC_PER_USEC;
}

static struct k_timeval ns_timeval(uint64_t ns)
{
    return (struct k_timeval){ (int64_t)(ns / NSEC_PER_SEC), (int64_t)(ns % NSEC_PER_SEC / NSEC_PER_USEC) };
}

/* What is left of p's timer, in ns: an armed timer whose deadline has
 * passed but has not fired yet reads 1 us, as Linux. */
static uint64_t remaining_ns(struct task *p)
{
    if (!p->itimer_deadline)
        return 0;
    uint64_t now = clock_ns();
    return p->itimer_deadline > now ? p->itimer_deadline - now : NSEC_PER_USEC;
}

/* Replace the real timer of the current process with value/interval (ns,
 * value 0 disarms); the old ones go to *old_value and *old_interval. */
static void set_real(uint64_t value, uint64_t interval, uint64_t *old_value, uint64_t *old_interval)
{
    struct task *p = thread_leader(current);
    *old_value = remaining_ns(p);
    *old_interval = p->itimer_interval;
    set_deadline(p, value ? add_capped(clock_ns(), value) : 0, value ? interval : 0);
    recompute_next();
}

long sys_getitimer(uint64_t which, uint64_t curr)
{
    struct k_itimerval v = { { 0, 0 }, { 0, 0 } };
    if (which > ITIMER_PROF)
        return -EINVAL;
    if (which == ITIMER_REAL) {
        struct task *p = thread_leader(current);
        v.value = ns_timeval(remaining_ns(p));
        v.interval = ns_timeval(p->itimer_interval);
    }
    return copy_to_user(curr, &v, sizeof v) < 0 ? -EFAULT : 0;
}

static int timeval_ok(const struct k_timeval *tv)
{
    return tv->sec >= 0 && tv->usec >= 0 && tv->usec < 1000000;
}

/* A null new value disarms, as Linux (which warns about it). */
long sys_setitimer(uint64_t which, uint64_t new_value, uint64_t old_value)
{
    struct k_itimerval v = { { 0, 0 }, { 0, 0 } }, old = { { 0, 0 }, { 0, 0 } };
    if (new_value && copy_from_user(&v, new_value, sizeof v) < 0)
        return -EFAULT;
    if (which > ITIMER_PROF || !timeval_ok(&v.value) || !timeval_ok(&v.interval))
        return -EINVAL;
    if (which != ITIMER_REAL) {
        if (v.value.sec || v.value.usec)
            return -EINVAL;             /* no CPU-time accounting here (top of file) */
    } else {
        uint64_t ov, oi;
        set_real(timeval_ns(&v.value), timeval_ns(&v.interval), &ov, &oi);
        old.value = ns_timeval(ov);
        old.interval = ns_timeval(oi);
    }
    if (old_value && copy_to_user(old_value, &old, sizeof old) < 0)
        return -EFAULT;
    return 0;
}

/* The seconds left of the old timer, rounded as Linux: up from .5 s, and
 * never 0 for a timer that was armed. */
long sys_alarm(uint64_t seconds)
{
    uint64_t old, old_interval;
    set_real((uint64_t)(uint32_t)seconds * NSEC_PER_SEC, 0, &old, &old_interval);
    uint64_t sec = old / NSEC_PER_SEC, nsec = old % NSEC_PER_SEC;
    if ((!sec && nsec) || nsec >= NSEC_PER_SEC / 2)
        sec++;
    return (long)sec;
}
