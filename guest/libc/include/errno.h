/* Linux errno numbers. Wrappers return them negated (-EBADF); see syscall.h. */
#ifndef LIBC_ERRNO_H
#define LIBC_ERRNO_H

#include <linux_abi.h>      /* EPERM ... EHWPOISON: the numbers the kernel uses */

#endif
