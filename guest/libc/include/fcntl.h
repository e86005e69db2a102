/* openat() and its flags (Linux x86-64 values). */
#ifndef LIBC_FCNTL_H
#define LIBC_FCNTL_H

#define AT_FDCWD    (-100)

#define O_RDONLY    0x0000
#define O_WRONLY    0x0001
#define O_RDWR      0x0002
#define O_CREAT     0x0040
#define O_EXCL      0x0080
#define O_TRUNC     0x0200
#define O_APPEND    0x0400
#define O_DIRECT    0x4000
#define O_CLOEXEC   0x80000

/* Returns a file descriptor or -errno. */
int openat(int dirfd, const char *path, int flags, int mode);

#endif
