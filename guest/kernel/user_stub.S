/*
 * The ring-3 stubs: the only kernel code that runs in user mode.
 *
 * Why: on this machine's nested KVM every ring-0 instruction is emulated
 * (about 1 µs each; `rep stosq` or `rep movsq` cost that per 8 bytes, ~110 ms
 * per MiB), while ring 3 runs natively.  So where the kernel would zero or
 * copy user memory in bulk, it returns to user mode HERE instead of at the
 * interrupted RIP; the stub does the work at native speed and then resumes
 * the program exactly where the kernel would have.  No program instruction
 * runs before the work is done.  (On real hardware this is merely a little
 * faster than doing it in the kernel.)
 *
 *   user_zero_stub   fresh pages (the program's .bss, memory from brk,
 *                    anonymous pages on a page fault), mapped unzeroed:
 *                    RDI = first byte, RCX = quadwords, RAX = 0
 *   user_copy_stub   read() of a boot-image file (fs/data.c): RSI = the
 *                    source in the copy window, RDI = the reader's buffer,
 *                    RCX = bytes
 *
 * It lives in its own page, mapped read-only and executable for the user at
 * USER_STUB_VA.  Entry state, set by user_zero_on_return() and
 * user_copy_on_return() (mm/uaccess.c): DF = 0, and
 *   RSP = save area:  0: RDI  8: RSI  16: RAX  24: RCX  32: RFLAGS  40: RIP
 *   to restore; the original RSP is save area + 48 + SIGNAL_RED_ZONE (the
 *   red zone below the interrupted RSP is left untouched).
 * Every register a stub uses is restored (after a page fault all are live;
 * after a system call RAX is its result and R11, clobbered by `syscall`
 * anyway, is scratch), and only flag-neutral instructions follow `popfq`,
 * so RFLAGS is restored too.  The final jump reads the saved RIP below the
 * restored RSP: nothing writes there meanwhile (interrupts use the kernel
 * stack; a signal delivered in this window, which nothing sends yet, would
 * have to finish the stub first).
 */
#include "layout.h"
#include "uapi.h"

    .section .text.user, "ax"
    .balign 4096
    .globl user_stub_page, user_zero_stub, user_copy_stub
user_stub_page:
user_zero_stub:
    rep stosq
    jmp     stub_return

user_copy_stub:
    movq    %rcx, %r11              /* quadwords, then the odd bytes: a software CPU */
    shrq    $3, %rcx                /* runs rep movsb a byte at a time */
    rep movsq
    movq    %r11, %rcx
    andq    $7, %rcx
    rep movsb

stub_return:
    movq    0(%rsp), %rdi
    movq    8(%rsp), %rsi
    movq    16(%rsp), %rax
    movq    24(%rsp), %rcx
    leaq    32(%rsp), %rsp          /* lea: leaves the flags alone */
    popfq                           /* RSP = save area + 40 */
    leaq    8 + SIGNAL_RED_ZONE(%rsp), %rsp
    jmp     *-(8 + SIGNAL_RED_ZONE)(%rsp)    /* the saved RIP */
    .balign 4096
