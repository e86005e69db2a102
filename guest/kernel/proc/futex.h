/* Futexes (futex.c): the system call, and the kernel's own wake-ups. */
#ifndef PROC_FUTEX_H
#define PROC_FUTEX_H
#include <stdint.h>
#include "proc/task.h"

long sys_futex(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t utime, uint64_t uaddr2, uint64_t val3);
/* Wake up to nr waiters on the word at uaddr: how many, or -errno. */
long futex_wake(uint64_t uaddr, int private, long nr);
/* A thread of t's ends: its robust futexes get FUTEX_OWNER_DIED and a
 * wake-up; its clear_child_tid word is zeroed and woken (shared key). */
void futex_exit_release(struct task *t);

#endif
