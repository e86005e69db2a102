/* snprintf and vsnprintf: format into a caller's buffer (C99 semantics). */
#include <stdio.h>
#include <string.h>

#include "format.h"

struct buf_sink {
    struct sink sink;   /* first, so a struct sink * is a struct buf_sink * */
    char *buf;
    size_t size;        /* room for characters, excluding the final NUL */
    size_t used;
};

static void buf_put(struct sink *sink, const char *text, size_t len)
{
    struct buf_sink *s = (struct buf_sink *)sink;
    size_t room = s->size - s->used;
    size_t k = len < room ? len : room;

    memcpy(s->buf + s->used, text, k);
    s->used += k;
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
    struct buf_sink s = { .sink = { buf_put }, .buf = buf, .size = size ? size - 1 : 0 };
    int count = format(&s.sink, fmt, ap);

    if (size)
        buf[s.used] = '\0';
    return count;
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    int r = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    return r;
}
