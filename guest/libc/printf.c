/* printf, dprintf, puts, putchar: format to a file descriptor.
 *
 * Output is collected in a buffer on the stack and written when it fills up
 * and when the call ends, so a short printf() is a single write(). Nothing
 * stays buffered after a call returns. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "format.h"

struct fd_sink {
    struct sink sink;   /* first, so a struct sink * is a struct fd_sink * */
    int fd;
    int error;          /* first -errno from write(), or 0 */
    size_t used;
    char buf[256];
};

static void flush(struct fd_sink *s)
{
    if (s->used && !s->error) {
        ssize_t n = write_all(s->fd, s->buf, s->used);
        if (n < 0)
            s->error = (int)n;
    }
    s->used = 0;
}

static void fd_put(struct sink *sink, const char *text, size_t len)
{
    struct fd_sink *s = (struct fd_sink *)sink;

    while (len) {
        if (s->used == sizeof(s->buf))
            flush(s);
        size_t room = sizeof(s->buf) - s->used;
        size_t k = len < room ? len : room;
        memcpy(s->buf + s->used, text, k);
        s->used += k;
        text += k;
        len -= k;
    }
}

int vdprintf(int fd, const char *fmt, va_list ap)
{
    struct fd_sink s = { .sink = { fd_put }, .fd = fd };
    int count = format(&s.sink, fmt, ap);

    flush(&s);
    return s.error ? s.error : count;
}

int dprintf(int fd, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int r = vdprintf(fd, fmt, ap);
    va_end(ap);
    return r;
}

int vprintf(const char *fmt, va_list ap)
{
    return vdprintf(STDOUT_FILENO, fmt, ap);
}

int printf(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int r = vdprintf(STDOUT_FILENO, fmt, ap);
    va_end(ap);
    return r;
}

int puts(const char *s)
{
    return printf("%s\n", s);
}

int putchar(int c)
{
    char ch = (char)c;
    ssize_t n = write_all(STDOUT_FILENO, &ch, 1);

    return n < 0 ? (int)n : (unsigned char)ch;
}
