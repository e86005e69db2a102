/* A tiny unbuffered printf family.
 *
 * Conversions: %d %i %u %x %X %o %c %s %p %%, with the length modifiers
 * h hh l ll z, the flags '-' '0' '+' ' ', a field width and a precision
 * (both may be '*'). No floating point.
 *
 * Nothing is buffered between calls: each printf() formats into a small
 * buffer on the stack and writes it out before returning, so output to
 * fd 1 and fd 2 keeps the order of the calls.
 */
#ifndef LIBC_STDIO_H
#define LIBC_STDIO_H

#include <stdarg.h>
#include <stddef.h>

#define EOF (-1)

/* Return the number of characters written, or -errno if a write failed. */
int printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int dprintf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int vprintf(const char *fmt, va_list ap);
int vdprintf(int fd, const char *fmt, va_list ap);

/* Return the length the full output would have (it is truncated to size-1
 * characters plus a NUL when it does not fit), like C99. */
int snprintf(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int vsnprintf(char *buf, size_t size, const char *fmt, va_list ap);

/* Write s and a newline to fd 1. Return a non-negative number or -errno. */
int puts(const char *s);
/* Write one character to fd 1. Return it, or -errno. */
int putchar(int c);

#endif
