/* The printf formatting engine, shared by printf, dprintf and snprintf.
 * See stdio.h for the supported conversions. */
#include <stdint.h>
#include <string.h>

#include "format.h"

struct spec {
    int left;           /* '-': pad on the right */
    int zero;           /* '0': pad numbers with zeros */
    int plus;           /* '+': always print a sign */
    int space;          /* ' ': a space where a '+' would go */
    int alt;            /* '#': 0x prefix for %x */
    int width;          /* minimum field width */
    int precision;      /* minimum digits, or maximum string length; -1 if none */
    int length;         /* number of 'l' (2 for ll and z), -1 h, -2 hh */
};

struct out {
    struct sink *sink;
    int count;
};

static void put(struct out *o, const char *text, size_t len)
{
    if (len) {
        o->sink->put(o->sink, text, len);
        o->count += (int)len;
    }
}

static void pad(struct out *o, char c, int n)
{
    char chunk[16];

    memset(chunk, c, sizeof(chunk));
    while (n > 0) {
        int k = n < (int)sizeof(chunk) ? n : (int)sizeof(chunk);
        put(o, chunk, (size_t)k);
        n -= k;
    }
}

/* Text of `len` characters in a field of sp->width, padded with spaces. */
static void field(struct out *o, const struct spec *sp, const char *text, int len)
{
    if (!sp->left)
        pad(o, ' ', sp->width - len);
    put(o, text, (size_t)len);
    if (sp->left)
        pad(o, ' ', sp->width - len);
}

static void number(struct out *o, const struct spec *sp, unsigned long long v,
                   int negative, unsigned base, int upper, int hexprefix)
{
    const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buf[24];
    int n = 0;

    /* C: "%.0d" of 0 prints no digits at all. */
    if (v != 0 || sp->precision != 0) {
        do {
            buf[sizeof(buf) - 1 - n++] = digits[v % base];
            v /= base;
        } while (v);
    }

    char prefix[3];
    int plen = 0;
    if (negative)
        prefix[plen++] = '-';
    else if (sp->plus)
        prefix[plen++] = '+';
    else if (sp->space)
        prefix[plen++] = ' ';
    if (hexprefix) {
        prefix[plen++] = '0';
        prefix[plen++] = upper ? 'X' : 'x';
    }

    int zeros = sp->precision > n ? sp->precision - n : 0;
    if (sp->zero && !sp->left && sp->precision < 0 && sp->width > plen + n)
        zeros = sp->width - plen - n;
    int total = plen + zeros + n;

    if (!sp->left)
        pad(o, ' ', sp->width - total);
    put(o, prefix, (size_t)plen);
    pad(o, '0', zeros);
    put(o, buf + sizeof(buf) - n, (size_t)n);
    if (sp->left)
        pad(o, ' ', sp->width - total);
}

static unsigned long long take_unsigned(int length, va_list *ap)
{
    if (length >= 2)
        return va_arg(*ap, unsigned long long);
    if (length == 1)
        return va_arg(*ap, unsigned long);
    unsigned v = va_arg(*ap, unsigned);
    if (length == -1)
        return (unsigned short)v;
    if (length == -2)
        return (unsigned char)v;
    return v;
}

static long long take_signed(int length, va_list *ap)
{
    if (length >= 2)
        return va_arg(*ap, long long);
    if (length == 1)
        return va_arg(*ap, long);
    int v = va_arg(*ap, int);
    if (length == -1)
        return (short)v;
    if (length == -2)
        return (signed char)v;
    return v;
}

/* Reads flags, width, precision and length after a '%'; returns the
 * position of the conversion character. */
static const char *parse_spec(const char *f, struct spec *sp, va_list *ap)
{
    memset(sp, 0, sizeof(*sp));
    sp->precision = -1;

    for (;; f++) {
        if (*f == '-') sp->left = 1;
        else if (*f == '0') sp->zero = 1;
        else if (*f == '+') sp->plus = 1;
        else if (*f == ' ') sp->space = 1;
        else if (*f == '#') sp->alt = 1;
        else break;
    }
    if (*f == '*') {
        sp->width = va_arg(*ap, int);
        if (sp->width < 0) {
            sp->left = 1;
            sp->width = -sp->width;
        }
        f++;
    } else {
        while (*f >= '0' && *f <= '9')
            sp->width = sp->width * 10 + (*f++ - '0');
    }
    if (*f == '.') {
        f++;
        sp->precision = 0;
        if (*f == '*') {
            sp->precision = va_arg(*ap, int);
            f++;
        } else {
            while (*f >= '0' && *f <= '9')
                sp->precision = sp->precision * 10 + (*f++ - '0');
        }
    }
    for (;; f++) {
        if (*f == 'l') sp->length++;
        else if (*f == 'h') sp->length--;
        else if (*f == 'z' || *f == 'j' || *f == 't') sp->length = 2;
        else break;
    }
    return f;
}

int format(struct sink *sink, const char *fmt, va_list ap)
{
    struct out o = { sink, 0 };
    va_list args;

    va_copy(args, ap);
    while (*fmt) {
        const char *start = fmt;
        while (*fmt && *fmt != '%')
            fmt++;
        put(&o, start, (size_t)(fmt - start));
        if (!*fmt)
            break;

        const char *percent = fmt++;
        struct spec sp;
        fmt = parse_spec(fmt, &sp, &args);

        switch (*fmt) {
        case 'd':
        case 'i': {
            long long v = take_signed(sp.length, &args);
            unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
            number(&o, &sp, mag, v < 0, 10, 0, 0);
            break;
        }
        case 'u':
            number(&o, &sp, take_unsigned(sp.length, &args), 0, 10, 0, 0);
            break;
        case 'o':
            number(&o, &sp, take_unsigned(sp.length, &args), 0, 8, 0, 0);
            break;
        case 'x':
        case 'X': {
            unsigned long long v = take_unsigned(sp.length, &args);
            number(&o, &sp, v, 0, 16, *fmt == 'X', sp.alt && v != 0);
            break;
        }
        case 'p':
            number(&o, &sp, (uintptr_t)va_arg(args, void *), 0, 16, 0, 1);
            break;
        case 'c': {
            char c = (char)va_arg(args, int);
            field(&o, &sp, &c, 1);
            break;
        }
        case 's': {
            const char *s = va_arg(args, const char *);
            if (!s)
                s = "(null)";
            size_t len = sp.precision >= 0 ? strnlen(s, (size_t)sp.precision) : strlen(s);
            field(&o, &sp, s, (int)len);
            break;
        }
        case '%':
            put(&o, "%", 1);
            break;
        default:    /* unknown or truncated: print the directive as is */
            if (!*fmt) {
                put(&o, percent, (size_t)(fmt - percent));
                va_end(args);
                return o.count;
            }
            put(&o, percent, (size_t)(fmt + 1 - percent));
            break;
        }
        fmt++;
    }
    va_end(args);
    return o.count;
}
