/* A guest program with no libc: what any static x86-64 Linux binary does at its simplest.
   Prints a line through write(1, ...) and ends with exit_group(0). */
        .globl _start
        .text
_start:
        mov     $1, %eax                /* write */
        mov     $1, %edi
        lea     message(%rip), %rsi
        mov     $length, %edx
        syscall
        mov     $231, %eax              /* exit_group */
        xor     %edi, %edi
        syscall

        .section .rodata
message:
        .ascii  "hello from the sample project\n"
        .set    length, . - message
        .section .note.GNU-stack, "", @progbits
