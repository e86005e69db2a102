/*
 * Command line: "console=ttyS0 -- foo bar" gives argv {"init", "foo", "bar"}.
 * Tokens before "--" are kernel options; none is used yet, so all are ignored.
 */
#include "cmdline.h"

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Next token of *p, NUL-terminated in place, or 0 at the end. */
static char *next_token(char **p)
{
    char *s = *p;
    while (is_space(*s))
        s++;
    if (!*s)
        return 0;
    char *tok = s;
    while (*s && !is_space(*s))
        s++;
    if (*s)
        *s++ = 0;
    *p = s;
    return tok;
}

int cmdline_args(char *cmdline, char **argv, int max)
{
    static char init[] = "init";
    int argc = 0, after_dashes = 0;
    char *tok;

    argv[argc++] = init;
    while ((tok = next_token(&cmdline)) && argc < max - 1) {
        if (after_dashes)
            argv[argc++] = tok;
        else if (tok[0] == '-' && tok[1] == '-' && tok[2] == 0)
            after_dashes = 1;
    }
    argv[argc] = 0;
    return argc;
}
