/* Making the CPU ready: descriptor tables, syscall MSRs, CPU features. */
#ifndef CPU_H
#define CPU_H

#include <stdint.h>

void cpu_init(void);
/* The stack traps and system calls from user mode land on (the running task's). */
void cpu_set_kernel_stack(uint64_t top);
extern int cpu_has_nx;     /* EFER.NXE enabled: PTE_NX may be used */

#endif
