/*
 * The ring-3 zeroing stub: the only kernel code that runs in user mode.
 *
 * Why: on this machine's nested KVM every ring-0 instruction is emulated
 * (about 1 µs each; `rep stosq` costs that per 8 bytes, ~110 ms per MiB),
 * while ring 3 runs natively.  So when fresh pages must be zeroed (the
 * program's .bss, memory from brk, anonymous pages on a page fault), the
 * kernel maps them unzeroed and returns to user mode HERE instead of at the
 * interrupted RIP; the stub
 * zeroes them at native speed and then resumes the program exactly where
 * the kernel would have.  No program instruction runs before the zeroing is
 * done, so the program never sees stale memory.  (On real hardware this is
 * merely a little faster than zeroing in the kernel.)
 *
 * It lives in its own page, mapped read-only and executable for the user at
 * USER_STUB_VA (uspace.c).  Entry state, set by user_zero_on_return():
 *   RDI = first byte to zero, RCX = number of quadwords, RAX = 0, DF = 0,
 *   RSP = save area:  0: RDI  8: RAX  16: RFLAGS  24: RIP  32: RCX  to
 *   restore; the original RSP is save area + 40 + SIGNAL_RED_ZONE (the red
 *   zone below the interrupted RSP is left untouched).
 * Every register it uses is restored (after a page fault all are live), and
 * only flag-neutral instructions follow `popfq`, so RFLAGS is restored too.
 * The final jump reads the saved RIP below the restored RSP: nothing writes
 * there meanwhile (interrupts use the kernel stack; a signal delivered in
 * this window, which nothing sends yet, would have to finish the stub first).
 */
#include "layout.h"
#include "uapi.h"

    .section .text.user, "ax"
    .balign 4096
    .globl user_stub_page, user_zero_stub
user_stub_page:
user_zero_stub:
    rep stosq
    movq    0(%rsp), %rdi
    movq    8(%rsp), %rax
    movq    32(%rsp), %rcx
    leaq    16(%rsp), %rsp          /* lea: leaves the flags alone */
    popfq                           /* RSP = save area + 24 */
    leaq    16 + SIGNAL_RED_ZONE(%rsp), %rsp
    jmp     *-(16 + SIGNAL_RED_ZONE)(%rsp)   /* the saved RIP */
    .balign 4096
