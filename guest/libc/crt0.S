/* Process entry point. The kernel starts us with RSP pointing at
 *     argc, argv[0..argc-1], NULL, envp[0..], NULL, auxv...
 * We call main(argc, argv, envp) on a 16-byte aligned stack and pass its
 * return value to exit(). */
    .text
    .globl _start
    .type _start, @function
_start:
    xor     %ebp, %ebp              /* outermost frame marker */
    mov     (%rsp), %rdi            /* argc */
    lea     8(%rsp), %rsi           /* argv */
    lea     8(%rsi,%rdi,8), %rdx    /* envp = argv + argc + 1 */
    and     $-16, %rsp              /* psABI: aligned before the call */
    call    main
    mov     %eax, %edi
    call    exit
    ud2                             /* exit() does not return */
    .size _start, . - _start

    .section .note.GNU-stack, "", @progbits
