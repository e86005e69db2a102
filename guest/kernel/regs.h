/* The register frame every kernel entry builds (traps.S), lowest address first. */
#ifndef REGS_H
#define REGS_H
#include <stdint.h>

struct regs {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8;
    uint64_t rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector;        /* exception number; -1 for a system call */
    uint64_t error;         /* CPU error code or 0 */
    /* the interrupt frame, as pushed by the CPU and popped by iretq */
    uint64_t rip, cs, rflags, rsp, ss;
};

/* traps.S */
void enter_user(struct regs *r) __attribute__((noreturn));
extern char syscall_entry[];
extern const uint64_t trap_entries[32];   /* IDT entry points */

/* trap.c, syscall.c: called from traps.S */
void trap_handler(struct regs *r);
void syscall_handler(struct regs *r);
long syscall_dispatch(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                      uint64_t a4, uint64_t a5, uint64_t nr);

#endif
