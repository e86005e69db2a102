/* Counts to three and exits with status 3. Its .expect file is wrong on purpose (it wants
   four lines and status 0): the sample project's failing program, whose report is checked. */
        .globl _start
        .text
_start:
        mov     $1, %eax                /* write */
        mov     $1, %edi
        lea     lines(%rip), %rsi
        mov     $length, %edx
        syscall
        mov     $231, %eax              /* exit_group */
        mov     $3, %edi
        syscall

        .section .rodata
lines:
        .ascii  "one\ntwo\nthree\n"
        .set    length, . - lines
        .section .note.GNU-stack, "", @progbits
