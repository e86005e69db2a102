/* fault: prints a line, then writes to an unmapped address (page fault).
 * Nothing handles it: in the VM the kernel reports the fault and the VM
 * exits with 128 + SIGSEGV = 139; as a Linux process SIGSEGV kills it. */
#include <stdio.h>

int main(void)
{
    puts("about to fault");
    /* The store carries a global label: fault.expect names the faulting RIP by
     * that symbol, which the test runner looks up in this ELF, so the expected
     * report holds whatever address the compiler gives it. */
    __asm__ volatile(".globl fault_store\n"
                     "fault_store:\n\t"
                     "movl $1, (%0)" : : "r"((volatile int *)0x10) : "memory");
    puts("still alive?");
    return 1;
}
