/* strtoul, strtol, atoi: parse integers from text. */
#include <stdlib.h>

static int digit_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'Z')
        return c - 'A' + 10;
    return 99;
}

/* Parses an optional sign and the digits; *negative tells the sign. */
static unsigned long parse(const char *s, char **end, int base, int *negative)
{
    const char *p = s;
    unsigned long v = 0;
    int any = 0;

    while (*p == ' ' || (*p >= '\t' && *p <= '\r'))
        p++;
    *negative = 0;
    if (*p == '+' || *p == '-')
        *negative = *p++ == '-';

    if ((base == 0 || base == 16) && p[0] == '0' && (p[1] == 'x' || p[1] == 'X')
        && digit_value(p[2]) < 16) {
        p += 2;
        base = 16;
    } else if (base == 0) {
        base = p[0] == '0' ? 8 : 10;
    }

    for (; digit_value(*p) < base; p++, any = 1)
        v = v * (unsigned long)base + (unsigned long)digit_value(*p);

    if (end)
        *end = (char *)(any ? p : s);
    return v;
}

unsigned long strtoul(const char *s, char **end, int base)
{
    int negative;
    unsigned long v = parse(s, end, base, &negative);

    return negative ? 0UL - v : v;
}

long strtol(const char *s, char **end, int base)
{
    int negative;
    unsigned long v = parse(s, end, base, &negative);

    return negative ? -(long)v : (long)v;
}

int atoi(const char *s)
{
    return (int)strtol(s, NULL, 10);
}
