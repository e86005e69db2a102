/*
 * The serial console as a terminal: /dev/console, /dev/tty, and
 * descriptors 0-2 of the first program.
 *
 * Output: the bytes as written, no "\n" -> "\r\n" (the host side captures
 * exactly what the program wrote), so the termios it reports has no OPOST.
 * Input, like a canonical tty: block (cpu_idle: HLT until an interrupt; IRQ
 * 4 fills the ring) for the first byte, then return what has arrived, up to
 * count, ending after '\n'; ^D at the start of a read is end of file, inside
 * a line it ends the read; ^D is consumed.  O_NONBLOCK: EAGAIN when empty.
 * The termios settings are stored and reported back (TCGETS/TCSETS), not
 * acted on; the window size is 0x0, as Linux reports for a serial line.
 */
#include "fs/vfs.h"
#include "irq.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/wait.h"
#include "serial.h"

/* The console's foreground process group (TIOCSPGRP): PID 1's at boot. */
static int32_t console_pgrp = 1;

#define CTRL_D 0x04

struct termios_k {              /* Linux's struct termios (TCGETS), 36 bytes */
    uint32_t iflag, oflag, cflag, lflag;
    uint8_t line;
    uint8_t cc[TERMIOS_NCCS];
};

_Static_assert(sizeof(struct termios_k) == 36, "termios layout");

static struct termios_k termios = {
    TTY_IFLAG, TTY_OFLAG, TTY_CFLAG, TTY_LFLAG, 0,
    /* INTR QUIT ERASE KILL EOF TIME MIN SWTC START STOP SUSP EOL REPRINT DISCARD WERASE LNEXT EOL2 */
    { 3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0 },
};
static uint16_t winsize[4];     /* rows, cols, xpixel, ypixel */

static long console_read(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)pos;
    if (count == 0)
        return 0;
    if (!user_ok(buf, count, 1))
        return -EFAULT;
    if (!serial_input_ready() && (f->flags & O_NONBLOCK))
        return -EAGAIN;
    if (wait_event(&console_input, serial_input_ready()))
        return restart_syscall();       /* a terminal read: again after SA_RESTART, as Linux */
    char *out = (char *)buf;
    uint64_t n = 0;
    while (n < count && serial_input_ready()) {
        uint8_t c = serial_take_byte();
        if (c == CTRL_D)
            break;
        out[n++] = (char)c;
        if (c == '\n')
            break;
    }
    return (long)n;
}

static long console_write(struct file *f, uint64_t buf, uint64_t count, int64_t *pos)
{
    (void)f; (void)pos;
    if (!user_ok(buf, count, 0))
        return -EFAULT;
    serial_write((const char *)buf, count);
    return (long)count;
}

static long console_ioctl(struct file *f, uint64_t cmd, uint64_t arg)
{
    (void)f;
    int32_t v;
    switch (cmd) {
    case TCGETS:
        return copy_to_user(arg, &termios, sizeof termios);
    case TCSETS:
    case TCSETSW:
    case TCSETSF:
        return copy_from_user(&termios, arg, sizeof termios);
    case TIOCGWINSZ:
        return copy_to_user(arg, winsize, sizeof winsize);
    case TIOCSWINSZ:
        return copy_from_user(winsize, arg, sizeof winsize);
    case FIONREAD:
        v = (int32_t)serial_input_count();
        return copy_to_user(arg, &v, 4);
    case TIOCGPGRP:
        return copy_to_user(arg, &console_pgrp, 4);
    case TIOCSPGRP:                     /* a group of the caller's session (issue 15a) */
        if (copy_from_user(&v, arg, 4) < 0)
            return -EFAULT;
        if (v < 0)
            return -EINVAL;
        for (struct task *t = all_tasks; t; t = t->all_next)
            if (t->pgid == v && t->sid == current->sid && t->state != TASK_ZOMBIE) {
                console_pgrp = v;
                return 0;
            }
        return -EPERM;
    case TIOCSCTTY:                     /* the console is every session's terminal */
        return 0;
    default:
        return -ENOTTY;
    }
}

static int console_poll(struct file *f)
{
    (void)f;
    return POLLOUT | POLLWRNORM | (serial_input_ready() ? POLLIN | POLLRDNORM : 0);
}

static long console_fsync(struct file *f)
{
    (void)f;
    return -EINVAL;                     /* a tty: nothing to sync, as Linux says */
}

const struct file_ops console_ops = {
    .read = console_read,
    .write = console_write,
    .ioctl = console_ioctl,
    .poll = console_poll,
    .fsync = console_fsync,
};
