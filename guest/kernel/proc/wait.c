/*
 * Wait queues (wait.h) on the scheduler (sched.c).  A sleeper links itself
 * on the queue and leaves the run queue; wake_up makes every sleeper on it
 * runnable again, and each one unlinks itself when it runs, whatever woke it
 * (wake_up, or a signal through task_wake).
 */
#include "proc/wait.h"

void waitq_sleep(struct waitq *q)
{
    current->wait_next = q->first;
    q->first = current;
    current->state = TASK_SLEEPING;
    schedule();
    for (struct task **p = &q->first; *p; p = &(*p)->wait_next)
        if (*p == current) {
            *p = current->wait_next;
            break;
        }
    current->wait_next = 0;
}

void wake_up(struct waitq *q)
{
    for (struct task *t = q->first; t; t = t->wait_next)
        task_wake(t);
}

int signal_pending(void)
{
    return (current->pending & ~current->blocked) != 0;
}
