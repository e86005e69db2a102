/* Linux errno numbers. Wrappers return them negated (-EBADF); see syscall.h. */
#ifndef LIBC_ERRNO_H
#define LIBC_ERRNO_H

#define EPERM    1
#define ENOENT   2
#define EINTR    4
#define EIO      5
#define ENXIO    6
#define EBADF    9
#define EAGAIN  11
#define ENOMEM  12
#define EACCES  13
#define EFAULT  14
#define EEXIST  17
#define ENOTDIR 20
#define EISDIR  21
#define EINVAL  22
#define EMFILE  24
#define ENOTTY  25
#define ENOSPC  28
#define ESPIPE  29
#define EROFS   30
#define ERANGE  34
#define ENOSYS  38
#define EOPNOTSUPP 95

#endif
