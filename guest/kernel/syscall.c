/*
 * The system call dispatcher (Linux x86-64 numbers and semantics): RAX =
 * number, RDI RSI RDX R10 R8 R9 = arguments, RAX = result or -errno.
 *
 * Both entries (the real `syscall` path and the #PF/#GP path of this
 * machine's nested KVM, traps.S) share syscall_common, which calls
 * syscall_dispatch directly, or syscall_handler with a struct regs for the
 * few calls that need all registers.  The user return state is always
 * rebuilt from RCX/R11, exactly what `syscall` saved (the #PF/#GP frame
 * holds the fault's RIP and RFLAGS instead).
 */
#include "clock.h"
#include "file.h"
#include "irq.h"
#include "kernel.h"
#include "layout.h"
#include "regs.h"
#include "serial.h"
#include "signal.h"
#include "uspace.h"
#include "x86.h"

#define CTRL_D 0x04

/* Console input like a canonical tty: block (cpu_idle: HLT until an
 * interrupt, IRQ 4 fills the ring) for the first byte, then return what has
 * arrived, up to count, ending after '\n'.  ^D at the start of a read is end
 * of file (returns 0); inside a line it ends the read.  ^D is consumed. */
static long console_read(char *buf, uint64_t count)
{
    while (!serial_input_ready())
        cpu_idle();
    uint64_t n = 0;
    while (n < count && serial_input_ready()) {
        uint8_t c = serial_take_byte();
        if (c == CTRL_D)
            break;
        buf[n++] = (char)c;
        if (c == '\n')
            break;
    }
    return (long)n;
}

static long sys_read(uint64_t fd, uint64_t buf, uint64_t count)
{
    if (fd != 0)
        return file_read_fd(fd, buf, count);
    if (count == 0)
        return 0;
    if (!user_ok(buf, count, 1))
        return -EFAULT;
    return console_read((char *)buf, count);
}

static long sys_write(uint64_t fd, uint64_t buf, uint64_t count)
{
    if (fd != 1 && fd != 2)
        return fd ? file_write_fd(fd, buf, count) : -EBADF;
    if (!user_ok(buf, count, 0))
        return -EFAULT;
    serial_write((const char *)buf, count);
    return (long)count;
}

static long sys_writev(uint64_t fd, uint64_t iov, uint64_t iovcnt)
{
    if (fd != 1 && fd != 2)
        return -EBADF;
    if (iovcnt > UIO_MAXIOV)
        return -EINVAL;
    if (!user_ok(iov, iovcnt * 16, 0))
        return -EFAULT;
    const uint64_t *v = (const uint64_t *)iov;   /* {base, len} pairs */
    uint64_t total = 0;
    for (uint64_t i = 0; i < iovcnt; i++) {  /* check everything before writing */
        if (!user_ok(v[2 * i], v[2 * i + 1], 0))
            return -EFAULT;
        total += v[2 * i + 1];
    }
    for (uint64_t i = 0; i < iovcnt; i++)
        serial_write((const char *)v[2 * i], v[2 * i + 1]);
    return (long)total;
}

static long sys_uname(uint64_t buf)
{
    static const char fields[6][12] = {
        "tinykernel", "vm", "0.1", "#1", "x86_64", "(none)",
    };
    if (!user_ok(buf, 6 * UTSNAME_LEN, 1))
        return -EFAULT;
    char *u = (char *)buf;
    memset(u, 0, 6 * UTSNAME_LEN);
    for (int i = 0; i < 6; i++)
        memcpy(u + UTSNAME_LEN * i, fields[i], strlen(fields[i]));
    return 0;
}

static long sys_arch_prctl(uint64_t code, uint64_t addr)
{
    switch (code) {
    case ARCH_SET_FS:
    case ARCH_SET_GS:
        if (addr >= USER_CANONICAL_END)
            return -EPERM;
        /* The syscall paths leave the user's GS base in MSR_GS_BASE. */
        wrmsr(code == ARCH_SET_FS ? MSR_FS_BASE : MSR_GS_BASE, addr);
        return 0;
    case ARCH_GET_FS:
    case ARCH_GET_GS:
        if (!user_ok(addr, 8, 1))
            return -EFAULT;
        *(uint64_t *)addr = rdmsr(code == ARCH_GET_FS ? MSR_FS_BASE : MSR_GS_BASE);
        return 0;
    default:
        return -EINVAL;
    }
}

/* The one dispatcher, called by the fast path in traps.S (arguments in
 * registers) and by syscall_handler. */
long syscall_dispatch(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3,
                      uint64_t a4, uint64_t a5, uint64_t nr)
{
    (void)a4;
    (void)a5;
    switch (nr) {
    case SYS_read:            return sys_read(a0, a1, a2);
    case SYS_write:           return sys_write(a0, a1, a2);
    case SYS_writev:          return sys_writev(a0, a1, a2);
    case SYS_rt_sigaction:    return sys_rt_sigaction(a0, a1, a2, a3);
    case SYS_rt_sigprocmask:  return sys_rt_sigprocmask(a0, a1, a2, a3);
    case SYS_ioctl:           return a0 <= 2 ? -ENOTTY : file_ioctl(a0, a1, a2);  /* no termios */
    case SYS_openat:          return sys_openat(a0, a1, a2, a3);
    case SYS_close:           return sys_close(a0);
    case SYS_pread64:         return sys_pread64(a0, a1, a2, a3);
    case SYS_pwrite64:        return sys_pwrite64(a0, a1, a2, a3);
    case SYS_lseek:           return sys_lseek(a0, a1, a2);
    case SYS_fsync:
    case SYS_fdatasync:       return sys_fsync(a0);
    case SYS_sched_yield:     return 0;
    case SYS_nanosleep:       return sys_nanosleep(a0, a1);
    case SYS_getpid:          return 1;
    case SYS_gettid:          return 1;
    case SYS_set_tid_address: return 1;     /* the tid; clear_child_tid is unused */
    case SYS_getppid:         return 0;
    case SYS_getuid:
    case SYS_geteuid:
    case SYS_getgid:
    case SYS_getegid:         return 0;
    case SYS_uname:           return sys_uname(a0);
    case SYS_arch_prctl:      return sys_arch_prctl(a0, a1);
    case SYS_clock_gettime:   return sys_clock_gettime(a0, a1);
    case SYS_gettimeofday:    return sys_gettimeofday(a0, a1);
    case SYS_clock_nanosleep: return sys_clock_nanosleep(a0, a1, a2, a3);
    case SYS_times:           return sys_times(a0);
    case SYS_exit:
    case SYS_exit_group:      vm_exit(a0 & 0xff);
    default:                  return -ENOSYS;
    }
}

/* The full path (traps.S): system calls that need the whole register frame. */
void syscall_handler(struct regs *r)
{
    /* traps.S already put RCX/R11 (sanitised) into rip/rflags. */
    r->cs = USER_CS;
    r->ss = USER_DS;
    if (r->rip >= USER_CANONICAL_END) {
        /* Only a forged call (a jump to syscall_entry) gets here; iretq
         * would fault in ring 0.  Linux would deliver SIGSEGV. */
        serial_start_line();
        serial_puts("fault: bad syscall return rip=");
        serial_put_hex(r->rip);
        serial_puts("\n");
        vm_exit(EXIT_SIGNAL_BASE + SIGSEGV);
    }
    if (r->rax == SYS_rt_sigreturn)
        sys_rt_sigreturn(r);                /* replaces every register */
    else if (r->rax == SYS_brk)
        sys_brk(r);                         /* may return through the zeroing stub */
    else
        r->rax = syscall_dispatch(r->rdi, r->rsi, r->rdx, r->r10, r->r8, r->r9, r->rax);
}
