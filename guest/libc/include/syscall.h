/* Raw Linux x86-64 system calls: the numbers and the one generic entry.
 *
 * Every wrapper in this libc returns what the kernel returns: a result >= 0,
 * or a negative errno value (-EBADF, -EFAULT, ...) on failure. There is no
 * global errno variable.
 */
#ifndef LIBC_SYSCALL_H
#define LIBC_SYSCALL_H

#include <linux_abi.h>      /* SYS_read ...: the numbers the kernel uses */

/* syscall6(nr, a1..a6): the `syscall` instruction with rax = nr and the
 * arguments in rdi, rsi, rdx, r10, r8, r9. Unused arguments may be 0. */
long syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

#endif
