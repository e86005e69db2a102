/* Every system call the table (table.c) names, by the file that implements it. */
#ifndef SYSCALL_SYSCALLS_H
#define SYSCALL_SYSCALLS_H
#include <stdint.h>
#include "regs.h"

typedef uint64_t u64;

/* fs/rw.c */
long sys_read(u64 fd, u64 buf, u64 count);
long sys_read_regs(struct regs *r);           /* the full path: maybe through the copy window */
long sys_pread64_regs(struct regs *r);
long sys_write(u64 fd, u64 buf, u64 count);
long sys_pread64(u64 fd, u64 buf, u64 count, u64 offset);
long sys_pwrite64(u64 fd, u64 buf, u64 count, u64 offset);
long sys_readv(u64 fd, u64 iov, u64 iovcnt);
long sys_writev(u64 fd, u64 iov, u64 iovcnt);
long sys_preadv(u64 fd, u64 iov, u64 iovcnt, u64 offset);
long sys_pwritev(u64 fd, u64 iov, u64 iovcnt, u64 offset);
long sys_lseek(u64 fd, u64 offset, u64 whence);
long sys_sendfile(u64 out_fd, u64 in_fd, u64 offset, u64 count);
long sys_fsync(u64 fd);
long sys_ioctl(u64 fd, u64 cmd, u64 arg);
/* fs/open.c */
long sys_open(u64 path, u64 flags, u64 mode);
long sys_openat(u64 dirfd, u64 path, u64 flags, u64 mode);
long sys_creat(u64 path, u64 mode);
long sys_close(u64 fd);
long sys_close_range(u64 first, u64 last, u64 flags);
long sys_dup(u64 fd);
long sys_dup2(u64 oldfd, u64 newfd);
long sys_dup3(u64 oldfd, u64 newfd, u64 flags);
long sys_fcntl(u64 fd, u64 cmd, u64 arg);
/* pipes, eventfd, epoll (issue 15b) */
long sys_pipe(u64 fds);
long sys_pipe2(u64 fds, u64 flags);
long sys_eventfd(u64 initval);
long sys_eventfd2(u64 initval, u64 flags);
long sys_epoll_create(u64 size);
long sys_epoll_create1(u64 flags);
long sys_epoll_ctl(u64 epfd, u64 op, u64 fd, u64 event);
long sys_epoll_wait(u64 epfd, u64 events, u64 maxevents, u64 timeout);
long sys_epoll_pwait(u64 epfd, u64 events, u64 maxevents, u64 timeout, u64 sigmask, u64 sigsetsize);
long sys_chdir(u64 path);
long sys_fchdir(u64 fd);
long sys_getcwd(u64 buf, u64 size);
long sys_umask(u64 mask);
/* fs/stat.c */
long sys_stat(u64 path, u64 buf);
long sys_lstat(u64 path, u64 buf);
long sys_fstat(u64 fd, u64 buf);
long sys_newfstatat(u64 dirfd, u64 path, u64 buf, u64 flags);
long sys_statx(u64 dirfd, u64 path, u64 flags, u64 mask, u64 buf);
long sys_getdents64(u64 fd, u64 buf, u64 count);
long sys_readlink(u64 path, u64 buf, u64 size);
long sys_readlinkat(u64 dirfd, u64 path, u64 buf, u64 size);
long sys_statfs(u64 path, u64 buf);
long sys_fstatfs(u64 fd, u64 buf);
/* fs/dir.c */
long sys_mkdir(u64 path, u64 mode);
long sys_mkdirat(u64 dirfd, u64 path, u64 mode);
long sys_mknod(u64 path, u64 mode, u64 dev);
long sys_mknodat(u64 dirfd, u64 path, u64 mode, u64 dev);
long sys_unlink(u64 path);
long sys_unlinkat(u64 dirfd, u64 path, u64 flags);
long sys_rmdir(u64 path);
long sys_rename(u64 oldpath, u64 newpath);
long sys_renameat(u64 olddfd, u64 oldpath, u64 newdfd, u64 newpath);
long sys_renameat2(u64 olddfd, u64 oldpath, u64 newdfd, u64 newpath, u64 flags);
long sys_link(u64 oldpath, u64 newpath);
long sys_linkat(u64 olddfd, u64 oldpath, u64 newdfd, u64 newpath, u64 flags);
long sys_symlink(u64 target, u64 linkpath);
long sys_symlinkat(u64 target, u64 newdfd, u64 linkpath);
/* fs/attr.c */
long sys_access(u64 path, u64 mode);
long sys_faccessat(u64 dirfd, u64 path, u64 mode);
long sys_faccessat2(u64 dirfd, u64 path, u64 mode, u64 flags);
long sys_chmod(u64 path, u64 mode);
long sys_fchmod(u64 fd, u64 mode);
long sys_fchmodat(u64 dirfd, u64 path, u64 mode);
long sys_chown(u64 path, u64 uid, u64 gid);
long sys_fchown(u64 fd, u64 uid, u64 gid);
long sys_lchown(u64 path, u64 uid, u64 gid);
long sys_fchownat(u64 dirfd, u64 path, u64 uid, u64 gid, u64 flags);
long sys_utimensat(u64 dirfd, u64 path, u64 times, u64 flags);
long sys_truncate(u64 path, u64 len);
long sys_ftruncate(u64 fd, u64 len);
/* fs/poll.c */
long sys_poll(u64 fds, u64 nfds, u64 timeout_ms);
long sys_ppoll(u64 fds, u64 nfds, u64 ts, u64 sigmask, u64 sigsetsize);
long sys_select(u64 nfds, u64 r, u64 w, u64 e, u64 tv);
long sys_pselect6(u64 nfds, u64 r, u64 w, u64 e, u64 ts, u64 sig);
/* mm/mmap.c */
long sys_mmap(u64 addr, u64 len, u64 prot, u64 flags, u64 fd, u64 off);
long sys_munmap(u64 addr, u64 len);
long sys_mprotect(u64 addr, u64 len, u64 prot);
long sys_mremap(u64 old, u64 old_len, u64 new_len, u64 flags, u64 new_addr);
long sys_madvise(u64 addr, u64 len, u64 advice);
long sys_msync(u64 addr, u64 len, u64 flags);
long sys_mlock(u64 addr, u64 len);
void sys_brk(struct regs *r);
/* proc/signal.c */
long sys_rt_sigaction(u64 sig, u64 act, u64 oact, u64 size);
long sys_rt_sigprocmask(u64 how, u64 set, u64 oset, u64 size);
long sys_rt_sigpending(u64 set, u64 size);
void sys_sigaltstack(struct regs *r);
void sys_rt_sigreturn(struct regs *r);
/* proc/task.c */
long sys_getpid(void);
long sys_gettid(void);
long sys_getppid(void);
long sys_getuid(void);
long sys_getgid(void);
long sys_getpgrp(void);
long sys_getpgid(u64 pid);
long sys_getsid(u64 pid);
long sys_setsid(void);
long sys_setid(u64 id);
long sys_setresid(u64 a, u64 b, u64 c);
long sys_setreid(u64 a, u64 b);
long sys_getresid(u64 a, u64 b, u64 c);
long sys_getgroups(u64 size, u64 list);
long sys_set_tid_address(u64 tidptr);
long sys_set_robust_list(u64 head, u64 len);
long sys_prlimit64(u64 pid, u64 resource, u64 new_limit, u64 old_limit);
long sys_getrlimit(u64 resource, u64 rlim);
long sys_setrlimit(u64 resource, u64 rlim);
long sys_prctl(u64 option, u64 arg2);
long sys_arch_prctl(u64 code, u64 addr);
long sys_exit(u64 status);
long sys_exit_group(u64 status);
long sys_kill(u64 pid, u64 sig);
long sys_tgkill(u64 tgid, u64 tid, u64 sig);
long sys_tkill(u64 tid, u64 sig);
long sys_wait4(u64 pid, u64 status, u64 options, u64 rusage);
long sys_waitid(u64 idtype, u64 id, u64 infop, u64 options, u64 rusage);
long sys_setpgid(u64 pid, u64 pgid);
long sys_pause(void);
long sys_rt_sigsuspend(u64 set, u64 size);
/* proc/futex.c */
long sys_futex(u64 uaddr, u64 op, u64 val, u64 utime, u64 uaddr2, u64 val3);
long sys_get_robust_list(u64 pid, u64 head_ptr, u64 len_ptr);
/* proc/info.c */
long sys_uname(u64 buf);
long sys_sysinfo(u64 buf);
long sys_getrandom(u64 buf, u64 count, u64 flags);
long sys_getrusage(u64 who, u64 buf);
long sys_sched_yield(void);
long sys_sched_getaffinity(u64 pid, u64 len, u64 mask);
long sys_sched_setaffinity(u64 pid, u64 len, u64 mask);
long sys_getcpu(u64 cpu, u64 node);
/* clock.c */
long sys_clock_gettime(u64 clock, u64 tp);
long sys_clock_getres(u64 clock, u64 res);
long sys_gettimeofday(u64 tv, u64 tz);
long sys_time(u64 t);
long sys_nanosleep(u64 req, u64 rem);
long sys_clock_nanosleep(u64 clock, u64 flags, u64 req, u64 rem);
long sys_times(u64 buf);
long sys_alarm(u64 seconds);
long sys_setitimer(u64 which, u64 new_value, u64 old_value);
long sys_getitimer(u64 which, u64 curr);
/* table.c */
long sys_ni(void);
long sys_zero(void);

#endif
