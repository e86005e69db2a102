/* fault: prints a line, then writes to an unmapped address (page fault).
 * Nothing handles it: in the VM the kernel reports the fault and the VM
 * exits with 128 + SIGSEGV = 139; as a Linux process SIGSEGV kills it. */
#include <stdio.h>

int main(void)
{
    volatile int *bad = (volatile int *)0x10;

    puts("about to fault");
    /* Hide the constant from gcc: it treats a pointer this close to NULL
     * as an empty object and -Warray-bounds rejects the store. */
    __asm__("" : "+r"(bad));
    *bad = 1;
    puts("still alive?");
    return 1;
}
