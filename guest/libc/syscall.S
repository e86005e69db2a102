/* long syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6)
 *
 * C passes nr, a1..a5 in rdi, rsi, rdx, rcx, r8, r9 and a6 on the stack;
 * the kernel wants nr in rax and a1..a6 in rdi, rsi, rdx, r10, r8, r9.
 * The kernel's result (>= 0, or -errno) comes back in rax. */
    .text
    .globl syscall6
    .type syscall6, @function
syscall6:
    mov     %rdi, %rax
    mov     %rsi, %rdi
    mov     %rdx, %rsi
    mov     %rcx, %rdx
    mov     %r8, %r10
    mov     %r9, %r8
    mov     8(%rsp), %r9
    syscall                         /* clobbers rcx and r11 */
    ret
    .size syscall6, . - syscall6

    .section .note.GNU-stack, "", @progbits
