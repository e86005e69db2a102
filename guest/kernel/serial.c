/*
 * COM1 16550A by polling (no interrupts yet).  Raw bytes: no "\n" -> "\r\n"
 * translation, the host side sees exactly what the program wrote.
 *
 * The UART is used as the firmware/VMM left it.  We deliberately do not
 * write FCR: on QEMU, switching the FIFO on flushes the receiver, and test
 * input may already be waiting when the kernel starts.
 */
#include "serial.h"
#include "layout.h"
#include "x86.h"

static int at_line_start = 1;   /* for serial_start_line() */

static void put_byte(uint8_t c)
{
    while (!(inb(COM1_BASE + UART_LSR) & UART_LSR_THRE))
        ;
    outb(COM1_BASE + UART_THR, c);
}

void serial_write(const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++)
        put_byte((uint8_t)buf[i]);
    if (len)
        at_line_start = buf[len - 1] == '\n';
}

void serial_puts(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    serial_write(s, n);
}

void serial_put_hex(uint64_t v)
{
    char buf[18];
    int i = sizeof buf;
    do {
        buf[--i] = "0123456789abcdef"[v & 15];
        v >>= 4;
    } while (v);
    buf[--i] = 'x';
    buf[--i] = '0';
    serial_write(buf + i, sizeof buf - i);
}

void serial_put_dec(uint64_t v)
{
    char buf[20];
    int i = sizeof buf;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    serial_write(buf + i, sizeof buf - i);
}

/* Kernel reports must be whole lines even if the program left a partial one. */
void serial_start_line(void)
{
    if (!at_line_start)
        serial_write("\n", 1);
}

int serial_byte_ready(void)
{
    return inb(COM1_BASE + UART_LSR) & UART_LSR_DR;
}

uint8_t serial_read_byte(void)
{
    while (!serial_byte_ready())
        ;
    return inb(COM1_BASE + UART_RBR);
}
