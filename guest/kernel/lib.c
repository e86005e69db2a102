/*
 * memset/memcpy with string instructions.  Ring 0 is emulated on this
 * machine's KVM and its emulator walks `rep` instructions element by
 * element, so move 8 bytes per element and only the tail bytewise.
 */
#include "kernel.h"

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    uint64_t pattern = 0x0101010101010101ull * (uint8_t)c;
    size_t q = n / 8, b = n % 8;
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(q) : "a"(pattern) : "memory");
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(b) : "a"(pattern) : "memory");
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    size_t q = n / 8, b = n % 8;
    __asm__ volatile("rep movsq" : "+D"(d), "+S"(src), "+c"(q) : : "memory");
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(b) : : "memory");
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return x[i] - y[i];
    return 0;
}

size_t strlen(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

int strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) {
        a++;
        b++;
    }
    return (unsigned char)*a - (unsigned char)*b;
}

/* Forward copies (memcpy's direction) are safe when dst is below src. */
void *memmove(void *dst, const void *src, size_t n)
{
    if ((const char *)src >= (const char *)dst || (const char *)src + n <= (const char *)dst)
        return memcpy(dst, src, n);
    char *d = (char *)dst + n;
    const char *s = (const char *)src + n;
    while (n--)
        *--d = *--s;
    return dst;
}
