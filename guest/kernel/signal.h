/* POSIX signals, as far as CPU faults need them. */
#ifndef SIGNAL_H
#define SIGNAL_H
#include <stdint.h>
#include "regs.h"

long sys_rt_sigaction(uint64_t sig, uint64_t act, uint64_t oact, uint64_t size);
long sys_rt_sigprocmask(uint64_t how, uint64_t set, uint64_t oset, uint64_t size);
void sys_rt_sigreturn(struct regs *r);
/* Redirect r into the program's handler for sig; 0 if there is none (or
 * the frame cannot be written), and the caller kills the program. */
int signal_deliver(struct regs *r, int sig, int code, uint64_t addr, uint64_t cr2);

#endif
