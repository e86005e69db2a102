/*
 * Command line: "console=ttyS0 -- foo bar" gives the words {"foo", "bar"}.
 * Tokens before "--" are kernel options; the ones used are
 * virtio_mmio.device=<size>@<base>:<irq> (virtio_mmio.c), which is taken
 * from anywhere on the line: QEMU microvm appends its own at the very end,
 * after our "-- args" (so a program argument cannot start with it), and
 * "strace" (report every system call to the VMM: syscall/strace.c).
 */
#include "cmdline.h"
#include "kernel.h"
#include "syscall/strace.h"
#include "virtio.h"

/* Separators: space and every control character (Linux's isspace() plus a
 * few): one unsigned compare per byte, since ring 0 is emulated here and
 * the VMM's command line carries ~100 bytes of device announcements. */
static int is_space(char c)
{
    return (unsigned char)(c - 1) < ' ';   /* 1..32; NUL ends the line */
}

/* Next token of *p, NUL-terminated in place, or 0 at the end; *len its length. */
static char *next_token(char **p, size_t *len)
{
    char *s = *p;
    while (is_space(*s))
        s++;
    if (!*s)
        return 0;
    char *tok = s;
    while ((unsigned char)*s > ' ')
        s++;
    *len = (size_t)(s - tok);
    if (*s)
        *s++ = 0;
    *p = s;
    return tok;
}

static uint64_t load64(const char *p)
{
    uint64_t v;
    __builtin_memcpy(&v, p, 8);
    return v;
}

/* Starts with "virtio_mmio.device=" (19 bytes): three 8-byte compares. */
static int is_virtio_mmio_option(const char *tok, size_t len)
{
    return len >= 19 && load64(tok) == load64("virtio_m") && load64(tok + 8) == load64("mio.devi") &&
           load64(tok + 11) == load64(".device=");
}

int cmdline_args(char *cmdline, char **words, int max)
{
    int n = 0, after_dashes = 0;
    size_t len;
    char *tok;

    while ((tok = next_token(&cmdline, &len)) && n < max - 1) {
        if (is_virtio_mmio_option(tok, len))
            virtio_mmio_param(tok + 19, len - 19);
        else if (after_dashes)
            words[n++] = tok;
        else if (tok[0] == '-' && tok[1] == '-' && tok[2] == 0)
            after_dashes = 1;
        else if (len == 6 && memcmp(tok, "strace", 6) == 0)
            strace_enable();
    }
    words[n] = 0;
    return n;
}
