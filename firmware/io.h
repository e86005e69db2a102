/* Port I/O and small helpers for freestanding 32-bit code. */
#ifndef FIRMWARE_IO_H
#define FIRMWARE_IO_H

#include <stddef.h>
#include <stdint.h>

static inline void outb(uint16_t port, uint8_t v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outw(uint16_t port, uint16_t v)
{
    __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline void outl(uint16_t port, uint32_t v)
{
    __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port) : "memory");
    return v;
}

/* `rep insb`: one instruction for the whole block (KVM batches it per page, too). */
static inline void insb(uint16_t port, void *buf, uint32_t len)
{
    __asm__ volatile("rep insb" : "+D"(buf), "+c"(len) : "d"(port) : "memory");
}

static inline uint32_t bswap32(uint32_t v)
{
    return __builtin_bswap32(v);
}

/* A pointer to guest-physical memory (paging is off: physical = linear). The empty asm
 * hides the constant from gcc, which would otherwise warn about small addresses. */
static inline void *phys(uint32_t addr)
{
    void *p = (void *)addr;
    __asm__("" : "+r"(p));
    return p;
}

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif
