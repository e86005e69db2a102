/* The string functions gcc may call on its own, and COM1 output. */
#include "io.h"
#include "layout.h"
#include "firmware.h"

void *memcpy(void *dst, const void *src, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    void *d = dst;
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
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

/* COM1 is used as the VMM left it (no FCR write: see guest/kernel/serial.c). */
#define UART_THR        0
#define UART_LSR        5
#define UART_LSR_THRE   0x20

void serial_puts(const char *s)
{
    for (; *s; s++) {
        while (!(inb(COM1_PORT + UART_LSR) & UART_LSR_THRE))
            ;
        outb(COM1_PORT + UART_THR, (uint8_t)*s);
    }
}

void fail(uint32_t status, const char *reason)
{
    serial_puts("firmware: ");
    serial_puts(reason);
    serial_puts("\n");
    outl(DEBUG_EXIT_PORT, status);
    for (;;)                        /* no debug-exit device: stop here for good */
        __asm__ volatile("cli; hlt");
}
