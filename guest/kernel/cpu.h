/* Making the CPU ready: descriptor tables, syscall MSRs, CPU features. */
#ifndef CPU_H
#define CPU_H

void cpu_init(void);
extern int cpu_has_nx;     /* EFER.NXE enabled: PTE_NX may be used */

#endif
