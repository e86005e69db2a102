/*
 * The Linux x86-64 ABI beyond the numbers in linux_abi.h: flags, codes and
 * structure layouts, as Linux's include/uapi and arch/x86/include/uapi give
 * them.  Values are Linux's; a comment names the header when it helps.
 */
#ifndef UAPI_H
#define UAPI_H
#include "linux_abi.h"

/* ---- Auxiliary vector (linux/auxvec.h) ---------------------------------- */
#define AT_NULL          0
#define AT_PHDR          3
#define AT_PHENT         4
#define AT_PHNUM         5
#define AT_PAGESZ        6
#define AT_BASE          7
#define AT_FLAGS         8
#define AT_ENTRY         9
#define AT_UID           11
#define AT_EUID          12
#define AT_GID           13
#define AT_EGID          14
#define AT_PLATFORM      15
#define AT_HWCAP         16
#define AT_CLKTCK        17
#define AT_SECURE        23
#define AT_RANDOM        25
#define AT_HWCAP2        26
#define AT_EXECFN        31
#define AT_MINSIGSTKSZ   51
#define ELF64_PHDR_SIZE  56             /* sizeof(Elf64_Phdr), for AT_PHENT */

/* ---- Files (asm-generic/fcntl.h; octal as there) ------------------------ */
#define AT_FDCWD            (-100)
#define AT_SYMLINK_NOFOLLOW 0x100
#define AT_EACCESS          0x200
#define AT_REMOVEDIR        0x200
#define AT_SYMLINK_FOLLOW   0x400
#define AT_NO_AUTOMOUNT     0x800
#define AT_EMPTY_PATH       0x1000
#define AT_STATX_SYNC_TYPE  0x6000
#define O_ACCMODE      3
#define O_RDONLY       0
#define O_WRONLY       1
#define O_RDWR         2
#define O_CREAT        0100
#define O_EXCL         0200
#define O_NOCTTY       0400
#define O_TRUNC        01000
#define O_APPEND       02000
#define O_NONBLOCK     04000
#define O_DSYNC        010000
#define O_DIRECT       040000
#define O_LARGEFILE    0100000
#define O_DIRECTORY    0200000
#define O_NOFOLLOW     0400000
#define O_NOATIME      01000000
#define O_CLOEXEC      02000000
#define O_PATH         010000000
#define O_TMPFILE      020000000
/* What F_SETFL may change (fs/fcntl.c SETFL_MASK). */
#define O_SETFL_MASK   (O_APPEND | O_NONBLOCK | O_DSYNC | O_DIRECT | O_NOATIME)
#define F_DUPFD        0
#define F_GETFD        1
#define F_SETFD        2
#define F_GETFL        3
#define F_SETFL        4
#define F_GETLK        5
#define F_SETLK        6
#define F_SETLKW       7
#define F_DUPFD_CLOEXEC 1030
#define F_SETPIPE_SZ   1031
#define F_GETPIPE_SZ   1032
#define FD_CLOEXEC     1
#define F_UNLCK        2
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE  2
#define SEEK_SET       0
#define SEEK_CUR       1
#define SEEK_END       2
#define SEEK_DATA      3
#define SEEK_HOLE      4
#define R_OK 4
#define W_OK 2
#define X_OK 1
#define UTIME_NOW      ((1l << 30) - 1)
#define UTIME_OMIT     ((1l << 30) - 2)
#define PATH_MAX       4096
#define NAME_MAX       255
#define MAX_SYMLINKS   40               /* ELOOP after this many */

/* File types and permission bits (linux/stat.h). */
#define S_IFMT   0170000
#define S_IFSOCK 0140000
#define S_IFLNK  0120000
#define S_IFREG  0100000
#define S_IFBLK  0060000
#define S_IFDIR  0040000
#define S_IFCHR  0020000
#define S_IFIFO  0010000
#define S_ISUID  04000
#define S_ISGID  02000
#define S_ISVTX  01000
#define S_IALLUGO 07777
#define S_IXUGO  0111
#define STATX_BASIC_STATS 0x7ff
#define STATX_ATTR_MASK   0
#define STAT_BLOCK_SIZE   4096          /* st_blksize; st_blocks counts 512-byte units */

/* Device numbers: Linux's makedev() for majors and minors below 4096/256. */
#define MKDEV(major, minor) (((major) << 8) | (minor))
#define MAJOR(dev) (((dev) >> 8) & 0xfff)
#define MINOR(dev) ((dev) & 0xff)

/* ---- Memory (asm-generic/mman-common.h, mman.h) --------------------------- */
#define PROT_NONE       0
#define PROT_READ       1
#define PROT_WRITE      2
#define PROT_EXEC       4
#define PROT_GROWSDOWN  0x01000000
#define PROT_GROWSUP    0x02000000
#define MAP_SHARED      0x01
#define MAP_PRIVATE     0x02
#define MAP_SHARED_VALIDATE 0x03
#define MAP_TYPE        0x0f
#define MAP_FIXED       0x10
#define MAP_ANONYMOUS   0x20
#define MAP_GROWSDOWN   0x0100
#define MAP_DENYWRITE   0x0800
#define MAP_EXECUTABLE  0x1000
#define MAP_LOCKED      0x2000
#define MAP_NORESERVE   0x4000
#define MAP_POPULATE    0x8000
#define MAP_NONBLOCK    0x10000
#define MAP_STACK       0x20000
#define MAP_HUGETLB     0x40000
#define MAP_FIXED_NOREPLACE 0x100000
#define MREMAP_MAYMOVE  1
#define MREMAP_FIXED    2
#define MREMAP_DONTUNMAP 4
#define MADV_DONTNEED   4
#define MADV_FREE       8
#define MADV_REMOVE     9

/* ---- Terminal (asm-generic/ioctls.h, termbits.h) -------------------------- */
#define TCGETS     0x5401
#define TCSETS     0x5402
#define TCSETSW    0x5403
#define TCSETSF    0x5404
#define TIOCSCTTY  0x540e
#define TIOCGPGRP  0x540f
#define TIOCSPGRP  0x5410
#define TIOCGWINSZ 0x5413
#define TIOCSWINSZ 0x5414
#define FIONREAD   0x541b
#define TIOCNOTTY  0x5422
#define FIONBIO    0x5421
#define FIONCLEX   0x5450
#define FIOCLEX    0x5451
#define TERMIOS_NCCS 19
/* What Linux's serial console starts with (tty_std_termios), except that
 * output is raw: this console sends bytes as they are (no ONLCR). */
#define TTY_IFLAG  (0000400 | 0002000)                  /* ICRNL | IXON */
#define TTY_OFLAG  0
#define TTY_CFLAG  (0000017 | 0000060 | 0000200 | 0002000)   /* B38400 | CS8 | CREAD | HUPCL */
#define TTY_LFLAG  (0000001 | 0000002 | 0000010 | 0000020 | 0000040 | 0001000 | 0004000 | 0100000)
                   /* ISIG ICANON ECHO ECHOE ECHOK ECHOCTL ECHOKE IEXTEN */

/* ---- poll (asm-generic/poll.h) -------------------------------------------- */
#define POLLIN     0x001
#define POLLPRI    0x002
#define POLLOUT    0x004
#define POLLERR    0x008
#define POLLHUP    0x010
#define POLLNVAL   0x020
#define POLLRDNORM 0x040
#define POLLWRNORM 0x100
#define POLLRDHUP  0x2000
/* epoll (eventpoll.h): the POLL* bits above, and these. */
#define EPOLL_CTL_ADD  1
#define EPOLL_CTL_DEL  2
#define EPOLL_CTL_MOD  3
#define EPOLLEXCLUSIVE (1u << 28)
#define EPOLLWAKEUP    (1u << 29)
#define EPOLLONESHOT   (1u << 30)
#define EPOLLET        (1u << 31)
#define EPOLL_MAXEVENTS 0x7fffffffu / 12   /* INT_MAX / sizeof(struct epoll_event) */
/* eventfd (eventfd.h) */
#define EFD_SEMAPHORE  1
#define EFD_NONBLOCK   O_NONBLOCK
#define EFD_CLOEXEC    O_CLOEXEC
#define PIPE_BUF       4096            /* writes up to this size are atomic */

/* ---- Blocks (linux/fs.h) --------------------------------------------------- */
#define BLKROGET       0x125e          /* int: 1 if read-only */
#define BLKSSZGET      0x1268          /* int: logical sector size */
#define BLKGETSIZE64   0x80081272      /* u64: size in bytes */

/* ---- Clocks (linux/time.h) ------------------------------------------------- */
#define CLOCK_REALTIME     0
#define CLOCK_MONOTONIC    1
#define CLOCK_PROCESS_CPUTIME_ID 2
#define CLOCK_THREAD_CPUTIME_ID  3
#define CLOCK_MONOTONIC_RAW 4
#define CLOCK_REALTIME_COARSE 5
#define CLOCK_MONOTONIC_COARSE 6
#define CLOCK_BOOTTIME     7
#define TIMER_ABSTIME      1

/* ---- Futexes (linux/futex.h) ---------------------------------------------- */
#define FUTEX_WAIT            0
#define FUTEX_WAKE            1
#define FUTEX_REQUEUE         3
#define FUTEX_CMP_REQUEUE     4
#define FUTEX_WAKE_OP         5
#define FUTEX_WAIT_BITSET     9
#define FUTEX_WAKE_BITSET     10
#define FUTEX_PRIVATE_FLAG    128
#define FUTEX_CLOCK_REALTIME  256
#define FUTEX_BITSET_MATCH_ANY 0xffffffffu
#define FUTEX_WAITERS         0x80000000u     /* robust lists: the word's flags */
#define FUTEX_OWNER_DIED      0x40000000u
#define FUTEX_TID_MASK        0x3fffffffu
#define ROBUST_LIST_LIMIT     2048            /* entries walked at exit, at most (Linux's) */

/* ---- Process (asm/prctl.h, linux/prctl.h, linux/resource.h, random.h) ----- */
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define USER_CANONICAL_END 0x800000000000   /* first non-canonical user address */
#define PR_SET_PDEATHSIG   1
#define PR_GET_PDEATHSIG   2
#define PR_GET_DUMPABLE    3
#define PR_SET_DUMPABLE    4
#define PR_SET_NAME        15
#define PR_GET_NAME        16
#define PR_SET_CHILD_SUBREAPER 36
#define PR_GET_CHILD_SUBREAPER 37
#define PR_SET_NO_NEW_PRIVS 38
#define PR_GET_NO_NEW_PRIVS 39
#define TASK_COMM_LEN      16
#define RLIMIT_STACK       3
#define RLIMIT_NOFILE      7
#define RLIM_NLIMITS       16
#define RLIM_INFINITY      (~0ull)
#define NOFILE_DEFAULT     1024         /* RLIMIT_NOFILE soft, as Linux's init gets */
#define NOFILE_MAX         4096         /* ... and hard (the fd table's ceiling here) */
#define GRND_NONBLOCK      1
#define GRND_RANDOM        2
#define GRND_INSECURE      4
#define UTSNAME_LEN        65
#define UIO_MAXIOV         1024

/* ---- Signals (asm-generic/signal-defs.h, siginfo.h; x86 ucontext.h) ------- */
#define SIG_DFL       0
#define SIG_IGN       1
#define SIG_BLOCK     0
#define SIG_UNBLOCK   1
#define SIG_SETMASK   2
#define SA_NOCLDSTOP  0x00000001
#define SA_NOCLDWAIT  0x00000002
#define SA_SIGINFO    0x00000004
#define SA_RESTORER   0x04000000
#define SA_ONSTACK    0x08000000
#define SA_RESTART    0x10000000
#define SA_NODEFER    0x40000000
#define SA_RESETHAND  0x80000000
#define SI_USER       0
#define SI_KERNEL     0x80
#define ITIMER_REAL    0             /* setitimer, getitimer */
#define ITIMER_VIRTUAL 1
#define ITIMER_PROF    2
#define SI_TKILL      (-6)
#define SEGV_MAPERR   1
#define SEGV_ACCERR   2
#define BUS_ADRERR    2
#define ILL_ILLOPN    2
#define FPE_INTDIV    1
#define TRAP_BRKPT    1
#define UC_FP_XSTATE     0x1
#define UC_SIGCONTEXT_SS 0x2
#define UC_STRICT_RESTORE_SS 0x4
#define SS_ONSTACK    1
#define SS_DISABLE    2
#define SS_AUTODISARM (1u << 31)
#define MINSIGSTKSZ   2048
#define SIGNAL_RED_ZONE 128      /* psABI red zone below the user RSP */
#define FXSAVE_SIZE   512        /* the legacy FPU/SSE area in a signal frame */
#define MXCSR_DEFAULT 0x1f80     /* all SSE exceptions masked, round to nearest */
#define FCW_DEFAULT   0x037f     /* x87: 64-bit precision, exceptions masked (FNINIT's) */

/* ---- Processes (linux/sched.h, linux/wait.h, asm-generic/siginfo.h; issue 15a) */
#define CSIGNAL              0x000000ff   /* the exit signal in clone's flags */
#define CLONE_VM             0x00000100
#define CLONE_FS             0x00000200
#define CLONE_FILES          0x00000400
#define CLONE_SIGHAND        0x00000800
#define CLONE_VFORK          0x00004000
#define CLONE_PARENT         0x00008000
#define CLONE_THREAD         0x00010000
#define CLONE_SETTLS         0x00080000
#define CLONE_PARENT_SETTID  0x00100000
#define CLONE_CHILD_CLEARTID 0x00200000
#define CLONE_CHILD_SETTID   0x01000000
#define WNOHANG       0x00000001
#define WUNTRACED     0x00000002
#define WEXITED       0x00000004
#define WCONTINUED    0x00000008
#define WNOWAIT       0x01000000
#define __WNOTHREAD   0x20000000
#define __WALL        0x40000000
#define __WCLONE      0x80000000
#define P_ALL         0
#define P_PID         1
#define P_PGID        2
#define P_PIDFD       3
#define CLD_EXITED    1
#define CLD_KILLED    2
#define CLD_DUMPED    3

#endif
