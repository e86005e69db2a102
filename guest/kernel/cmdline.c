/*
 * Command line: "console=ttyS0 -- foo bar" gives argv {"init", "foo", "bar"}.
 * Tokens before "--" are kernel options; the only one used is
 * virtio_mmio.device=<size>@<base>:<irq> (virtio_mmio.c), which is taken
 * from anywhere on the line: QEMU microvm appends its own at the very end,
 * after our "-- args" (so a program argument cannot start with it).
 */
#include "cmdline.h"
#include "kernel.h"
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

int cmdline_args(char *cmdline, char **argv, int max)
{
    static char init[] = "init";
    int argc = 0, after_dashes = 0;
    size_t len;
    char *tok;

    argv[argc++] = init;
    while ((tok = next_token(&cmdline, &len)) && argc < max - 1) {
        if (is_virtio_mmio_option(tok, len))
            virtio_mmio_param(tok + 19, len - 19);
        else if (after_dashes)
            argv[argc++] = tok;
        else if (tok[0] == '-' && tok[1] == '-' && tok[2] == 0)
            after_dashes = 1;
    }
    argv[argc] = 0;
    return argc;
}
