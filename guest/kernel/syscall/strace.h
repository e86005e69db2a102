/* --strace: each system call reported to the VMM through a port (strace.c). */
#ifndef SYSCALL_STRACE_H
#define SYSCALL_STRACE_H
#include <stdint.h>
#include "regs.h"

extern int strace_on;
void strace_enable(void);                        /* the command line said "strace" */
void strace_syscall_entry(const struct regs *r);
void strace_syscall_exit(const struct regs *r, uint64_t nr, long ret);
void strace_signal(int sig, int code, uint64_t addr, int pid, int uid);  /* delivered: a handler, or death */
void strace_process_end(int status, int sig);            /* exited with status / killed by sig */

#endif
