/* Non-local jumps (x86-64). The buffer holds rbx, rbp, r12-r15, rsp and the
 * return address. The signal mask is not saved: leaving a signal handler
 * with longjmp() is safe when the handler was installed with SA_NODEFER. */
#ifndef LIBC_SETJMP_H
#define LIBC_SETJMP_H

typedef long jmp_buf[8];

__attribute__((returns_twice)) int setjmp(jmp_buf env);
/* Resumes at the setjmp() that filled env, which then returns val (1 if val is 0). */
__attribute__((noreturn)) void longjmp(jmp_buf env, int val);

#endif
