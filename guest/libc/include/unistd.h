/* File descriptor I/O, process and memory system calls.
 * All return a value >= 0 on success or a negative errno (see syscall.h). */
#ifndef LIBC_UNISTD_H
#define LIBC_UNISTD_H

#include <stddef.h>
#include <stdint.h>

#define STDIN_FILENO  0
#define STDOUT_FILENO 1
#define STDERR_FILENO 2

typedef long ssize_t;
typedef long off_t;
typedef int pid_t;

ssize_t read(int fd, void *buf, size_t count);
ssize_t write(int fd, const void *buf, size_t count);
ssize_t pread64(int fd, void *buf, size_t count, off_t offset);
ssize_t pwrite64(int fd, const void *buf, size_t count, off_t offset);
int close(int fd);
int fsync(int fd);
int fdatasync(int fd);

#define SEEK_SET 0
#define SEEK_CUR 1
#define SEEK_END 2
/* Returns the new offset or -errno. */
off_t lseek(int fd, off_t offset, int whence);

/* write() until all `count` bytes are written; returns count or -errno. */
ssize_t write_all(int fd, const void *buf, size_t count);

pid_t getpid(void);

/* SYS_exit: ends the calling thread (the whole process here). */
__attribute__((noreturn)) void _exit(int status);
/* SYS_exit_group: ends the process. exit() in stdlib.h calls this. */
__attribute__((noreturn)) void exit_group(int status);

/* The raw brk call: asks for a new program break and returns the break the
 * kernel settled on (unchanged on failure). brk(0) returns the current one. */
void *brk(void *addr);
/* Moves the break by `increment` bytes; returns the old break, or NULL if the
 * kernel refused. */
void *sbrk(long increment);

#endif
