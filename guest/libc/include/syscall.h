/* Raw Linux x86-64 system calls: the numbers and the one generic entry.
 *
 * Every wrapper in this libc returns what the kernel returns: a result >= 0,
 * or a negative errno value (-EBADF, -EFAULT, ...) on failure. There is no
 * global errno variable.
 */
#ifndef LIBC_SYSCALL_H
#define LIBC_SYSCALL_H

#define SYS_read            0
#define SYS_write           1
#define SYS_close           3
#define SYS_lseek           8
#define SYS_brk             12
#define SYS_rt_sigaction    13
#define SYS_rt_sigreturn    15
#define SYS_ioctl           16
#define SYS_pread64         17
#define SYS_pwrite64        18
#define SYS_nanosleep       35
#define SYS_getpid          39
#define SYS_exit            60
#define SYS_uname           63
#define SYS_fsync           74
#define SYS_fdatasync       75
#define SYS_times           100
#define SYS_clock_gettime   228
#define SYS_clock_nanosleep 230
#define SYS_exit_group      231
#define SYS_openat          257

/* syscall6(nr, a1..a6): the `syscall` instruction with rax = nr and the
 * arguments in rdi, rsi, rdx, r10, r8, r9. Unused arguments may be 0. */
long syscall6(long nr, long a1, long a2, long a3, long a4, long a5, long a6);

#endif
