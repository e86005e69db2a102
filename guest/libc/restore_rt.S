/* void __restore_rt(void): the SA_RESTORER stub.
 *
 * A signal handler's `ret` lands here with RSP just past the return address
 * slot of the signal frame, i.e. pointing at the ucontext the kernel built.
 * rt_sigreturn (15) reloads the interrupted registers from it. */
#include <linux_abi.h>

    .text
    .globl __restore_rt
    .type __restore_rt, @function
__restore_rt:
    mov     $SYS_rt_sigreturn, %eax
    syscall
    ud2                             /* rt_sigreturn does not return */
    .size __restore_rt, . - __restore_rt

    .section .note.GNU-stack, "", @progbits
