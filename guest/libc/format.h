/* Private to the libc: the printf formatting engine and its output sinks. */
#ifndef LIBC_FORMAT_H
#define LIBC_FORMAT_H

#include <stdarg.h>
#include <stddef.h>

/* Where formatted characters go. put() receives them in pieces. */
struct sink {
    void (*put)(struct sink *sink, const char *text, size_t len);
};

/* Formats like printf into `sink`; returns the number of characters produced. */
int format(struct sink *sink, const char *fmt, va_list ap);

#endif
