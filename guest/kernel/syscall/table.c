/*
 * The system-call table: Linux x86-64 numbers (linux_abi.h) to functions,
 * and which calls take the full entry path (a struct regs of all
 * registers, for calls that read or rewrite the whole user state).  Every
 * number not listed returns -ENOSYS, as Linux does for an unknown call.
 *
 * The fast path (traps.S) is `call *syscall_table(,%rax,8)` after one byte
 * test of syscall_full_path[nr]; --strace sets every byte, so that each call
 * goes through the full path and its report, and costs nothing otherwise.
 */
#include "syscall/syscalls.h"
#include "syscall/table.h"

#pragma GCC diagnostic ignored "-Woverride-init"     /* ENOSYS, then the real entries */

#define CALL(nr, fn) [SYS_##nr] = (syscall_fn)(void (*)(void))(fn)

long sys_ni(void)
{
    return -ENOSYS;
}

/* Calls that succeed and have nothing to do here: one process, no disks
 * cache, nothing to lock against (flock, sync, fadvise64, mlockall ...). */
long sys_zero(void)
{
    return 0;
}

const syscall_fn syscall_table[NR_SYSCALLS] = {
    [0 ... NR_SYSCALLS - 1] = (syscall_fn)(void (*)(void))sys_ni,
    /* files */
    CALL(read, sys_read), CALL(write, sys_write), CALL(open, sys_open), CALL(close, sys_close),
    CALL(stat, sys_stat), CALL(fstat, sys_fstat), CALL(lstat, sys_lstat), CALL(poll, sys_poll),
    CALL(lseek, sys_lseek), CALL(ioctl, sys_ioctl), CALL(pread64, sys_pread64),
    CALL(pwrite64, sys_pwrite64), CALL(readv, sys_readv), CALL(writev, sys_writev),
    CALL(access, sys_access), CALL(select, sys_select), CALL(dup, sys_dup), CALL(dup2, sys_dup2),
    CALL(sendfile, sys_sendfile), CALL(fcntl, sys_fcntl), CALL(flock, sys_zero), CALL(fsync, sys_fsync),
    CALL(fdatasync, sys_fsync), CALL(truncate, sys_truncate), CALL(ftruncate, sys_ftruncate),
    CALL(getcwd, sys_getcwd), CALL(chdir, sys_chdir), CALL(fchdir, sys_fchdir),
    CALL(rename, sys_rename), CALL(mkdir, sys_mkdir), CALL(rmdir, sys_rmdir), CALL(creat, sys_creat),
    CALL(link, sys_link), CALL(unlink, sys_unlink), CALL(symlink, sys_symlink),
    CALL(readlink, sys_readlink), CALL(chmod, sys_chmod), CALL(fchmod, sys_fchmod),
    CALL(chown, sys_chown), CALL(fchown, sys_fchown), CALL(lchown, sys_lchown), CALL(umask, sys_umask),
    CALL(mknod, sys_mknod), CALL(statfs, sys_statfs), CALL(fstatfs, sys_fstatfs), CALL(sync, sys_zero),
    CALL(getdents64, sys_getdents64), CALL(fadvise64, sys_zero), CALL(openat, sys_openat),
    CALL(mkdirat, sys_mkdirat), CALL(mknodat, sys_mknodat), CALL(fchownat, sys_fchownat),
    CALL(newfstatat, sys_newfstatat), CALL(unlinkat, sys_unlinkat), CALL(renameat, sys_renameat),
    CALL(linkat, sys_linkat), CALL(symlinkat, sys_symlinkat), CALL(readlinkat, sys_readlinkat),
    CALL(fchmodat, sys_fchmodat), CALL(faccessat, sys_faccessat), CALL(pselect6, sys_pselect6),
    CALL(ppoll, sys_ppoll), CALL(utimensat, sys_utimensat), CALL(dup3, sys_dup3),
    CALL(preadv, sys_preadv), CALL(pwritev, sys_pwritev), CALL(syncfs, sys_zero),
    CALL(renameat2, sys_renameat2), CALL(statx, sys_statx), CALL(close_range, sys_close_range),
    CALL(faccessat2, sys_faccessat2),
    /* pipes, eventfd, epoll (issue 15b) */
    CALL(pipe, sys_pipe), CALL(pipe2, sys_pipe2), CALL(eventfd, sys_eventfd), CALL(eventfd2, sys_eventfd2),
    CALL(epoll_create, sys_epoll_create), CALL(epoll_create1, sys_epoll_create1),
    CALL(epoll_ctl, sys_epoll_ctl), CALL(epoll_wait, sys_epoll_wait), CALL(epoll_pwait, sys_epoll_pwait),
    /* memory */
    CALL(mmap, sys_mmap), CALL(mprotect, sys_mprotect), CALL(munmap, sys_munmap),
    CALL(mremap, sys_mremap), CALL(msync, sys_msync), CALL(madvise, sys_madvise),
    CALL(mlock, sys_mlock), CALL(munlock, sys_mlock), CALL(mlockall, sys_zero), CALL(munlockall, sys_zero),
    /* signals (rt_sigreturn, sigaltstack: the full path, dispatch.c; so are brk, and read
     * and pread64 when they copy through the window) */
    CALL(rt_sigaction, sys_rt_sigaction), CALL(rt_sigprocmask, sys_rt_sigprocmask),
    CALL(rt_sigpending, sys_rt_sigpending), CALL(kill, sys_kill), CALL(tkill, sys_tkill),
    CALL(tgkill, sys_tgkill), CALL(pause, sys_pause), CALL(rt_sigsuspend, sys_rt_sigsuspend),
    /* process */
    CALL(getpid, sys_getpid), CALL(gettid, sys_gettid), CALL(getppid, sys_getppid),
    CALL(getuid, sys_getuid), CALL(geteuid, sys_getuid), CALL(getgid, sys_getgid),
    CALL(getegid, sys_getgid), CALL(setuid, sys_setid), CALL(setgid, sys_setid),
    CALL(setreuid, sys_setreid), CALL(setregid, sys_setreid), CALL(setresuid, sys_setresid),
    CALL(setresgid, sys_setresid), CALL(getresuid, sys_getresid), CALL(getresgid, sys_getresid),
    CALL(setfsuid, sys_zero), CALL(setfsgid, sys_zero), CALL(getgroups, sys_getgroups),
    CALL(setgroups, sys_zero), CALL(getpgrp, sys_getpgrp), CALL(getpgid, sys_getpgid),
    CALL(getsid, sys_getsid), CALL(setsid, sys_setsid), CALL(setpgid, sys_setpgid),
    CALL(set_tid_address, sys_set_tid_address), CALL(set_robust_list, sys_set_robust_list),
    CALL(prlimit64, sys_prlimit64), CALL(getrlimit, sys_getrlimit), CALL(setrlimit, sys_setrlimit),
    CALL(prctl, sys_prctl), CALL(arch_prctl, sys_arch_prctl), CALL(personality, sys_zero),
    CALL(exit, sys_exit), CALL(exit_group, sys_exit_group), CALL(wait4, sys_wait4), CALL(waitid, sys_waitid),
    CALL(getpriority, sys_zero), CALL(setpriority, sys_zero),
    /* threads (issue 15, part C) */
    CALL(futex, sys_futex), CALL(get_robust_list, sys_get_robust_list),
    /* system */
    CALL(uname, sys_uname), CALL(sysinfo, sys_sysinfo), CALL(getrandom, sys_getrandom),
    CALL(getrusage, sys_getrusage), CALL(sched_yield, sys_sched_yield),
    CALL(sched_getaffinity, sys_sched_getaffinity), CALL(sched_setaffinity, sys_sched_setaffinity),
    CALL(getcpu, sys_getcpu),
    /* time */
    CALL(clock_gettime, sys_clock_gettime), CALL(clock_getres, sys_clock_getres),
    CALL(gettimeofday, sys_gettimeofday), CALL(time, sys_time), CALL(nanosleep, sys_nanosleep),
    CALL(clock_nanosleep, sys_clock_nanosleep), CALL(times, sys_times),
    CALL(alarm, sys_alarm), CALL(setitimer, sys_setitimer), CALL(getitimer, sys_getitimer),   /* issue 15g */
};

/* 1: the call takes the full path.  Written by strace_enable(). */
uint8_t syscall_full_path[NR_SYSCALLS] = {
    [SYS_brk] = 1, [SYS_rt_sigreturn] = 1, [SYS_sigaltstack] = 1, [SYS_read] = 1, [SYS_pread64] = 1,
    [SYS_clone] = 1, [SYS_fork] = 1, [SYS_vfork] = 1, [SYS_execve] = 1,    /* issue 15a: they need the regs */
};
