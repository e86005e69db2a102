/* The user program's address space: pointer checks, stack growth, brk,
 * and zeroing fresh memory in ring 3. */
#ifndef USPACE_H
#define USPACE_H
#include <stdint.h>
#include "regs.h"

int user_ok(uint64_t addr, uint64_t len, int write);  /* 1 if all mapped (and writable) */
int user_stack_grow(uint64_t addr);                   /* 1 if addr is now mapped stack */
void uspace_init(uint64_t brk_start);                 /* maps the zeroing stub */
/* Make the return to user mode described by r first zero [start, end)
 * (mapped, page-aligned) in ring 3; zeroes in ring 0 if that is impossible. */
void user_zero_on_return(struct regs *r, uint64_t start, uint64_t end);
void sys_brk(struct regs *r);                         /* brk(r->rdi) -> r->rax */

#endif
