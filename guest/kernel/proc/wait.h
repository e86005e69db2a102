/*
 * Sleeping until something happens, and waking the sleepers: the one way a
 * system call blocks (pipes, wait4, futexes, the console, sleeps), so that a
 * scheduler can run other tasks meanwhile.
 *
 *   struct waitq q;                         zero-initialised: empty
 *   long err = wait_event(&q, cond);        0 once cond holds, or -EINTR
 *                                           when a signal is pending first
 *   wake_up(&q);                            every sleeper re-tests its cond
 *
 * cond is re-tested after every wake-up (wake-ups may be spurious), and with
 * interrupts off, so an interrupt handler's wake_up cannot be lost between
 * the test and the sleep.  Interrupt handlers may call wake_up.
 */
#ifndef PROC_WAIT_H
#define PROC_WAIT_H
#include "proc/task.h"

struct waitq {
    struct task *first;             /* sleepers, linked through task->wait_next */
};

/* Sleep once on q: returns after a wake_up of q (or a spurious wake-up). */
void waitq_sleep(struct waitq *q);
void wake_up(struct waitq *q);
/* Woken at every timer tick (and after every idle wake-up): for sleeps with
 * a deadline, and waits on what raises no interrupt (proc/sched.c). */
extern struct waitq tick_wq;
int signal_pending(void);           /* the current task has an unblocked signal */
/* Linux's ERESTARTSYS, never seen by a program: a blocking call that a signal
 * interrupted returns restart_syscall(); on the way back to user mode the
 * call starts again if the handler has SA_RESTART (or no handler runs), and
 * returns -EINTR otherwise (signal.c).  Calls Linux never restarts (sleeps,
 * poll, epoll_wait, sigsuspend, waits with a timeout) return -EINTR. */
#define ERESTARTSYS 512
long restart_syscall(void);

#define wait_event(q, cond) ({                              \
    long wait_event_err_ = 0;                               \
    while (!(cond)) {                                       \
        if (signal_pending()) {                             \
            wait_event_err_ = -EINTR;                       \
            break;                                          \
        }                                                   \
        waitq_sleep(q);                                     \
    }                                                       \
    wait_event_err_;                                        \
})

#endif
