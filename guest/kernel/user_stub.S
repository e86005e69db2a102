/*
 * The ring-3 zeroing stub: the only kernel code that runs in user mode.
 *
 * Why: on this machine's nested KVM every ring-0 instruction is emulated
 * (about 1 µs each; `rep stosq` costs that per 8 bytes, ~110 ms per MiB),
 * while ring 3 runs natively.  So when fresh pages must be zeroed (the
 * program's .bss, memory from brk), the kernel maps them unzeroed and
 * returns to user mode HERE instead of at the interrupted RIP; the stub
 * zeroes them at native speed and then resumes the program exactly where
 * the kernel would have.  No program instruction runs before the zeroing is
 * done, so the program never sees stale memory.  (On real hardware this is
 * merely a little faster than zeroing in the kernel.)
 *
 * It lives in its own page, mapped read-only and executable for the user at
 * USER_STUB_VA (uspace.c).  Entry state, set by user_zero_on_return():
 *   RDI = first byte to zero, RCX = number of quadwords, RAX = 0, DF = 0,
 *   RSP = save area:  0: RDI  8: RAX  16: RFLAGS  24: RIP  to restore;
 *   the original RSP is save area + 32 + SIGNAL_RED_ZONE (the red zone
 *   below the interrupted RSP is left untouched).
 * Only flag-neutral instructions follow `popfq`, so RFLAGS is restored too.
 */
#include "layout.h"

    .section .text.user, "ax"
    .balign 4096
    .globl user_stub_page, user_zero_stub
user_stub_page:
user_zero_stub:
    rep stosq
    movq    0(%rsp), %rdi
    movq    8(%rsp), %rax
    movq    24(%rsp), %rcx          /* RCX is clobbered by syscall anyway */
    leaq    16(%rsp), %rsp          /* lea: leaves the flags alone */
    popfq
    leaq    8 + SIGNAL_RED_ZONE(%rsp), %rsp
    jmp     *%rcx
    .balign 4096
