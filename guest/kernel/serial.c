/*
 * COM1 16550A.  Output by polling LSR; input by interrupt (IRQ 4, IER
 * received-data-available) into a small ring that read(0) takes from.  Raw
 * bytes: no "\n" -> "\r\n" translation, the host side sees exactly what the
 * program wrote.
 *
 * The UART is used as the firmware/VMM left it.  We deliberately do not
 * write FCR: on QEMU, switching the FIFO on flushes the receiver, and test
 * input may already be waiting when the kernel starts (enabling IER then
 * raises the interrupt at once).
 */
#include "fs/vfs.h"
#include "proc/wait.h"
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

/* ---- Input ---------------------------------------------------------------- */

/* The ring: bytes [rx_tail, rx_head) (free-running indexes).  Written only
 * with IF=0 (the IRQ handler, or the kernel, which runs with IF=0), so it
 * needs no locking.  The bytes are not in .bss: nothing reads a slot before
 * writing it, so entry.S need not zero them. */
static uint8_t rx_ring[CONSOLE_RX_SIZE] __attribute__((section(".noinit")));
static uint32_t rx_head, rx_tail;
struct waitq console_input;
static int rx_stopped;          /* ring was full: IER = 0 until read() makes room */

void serial_init_input(void)
{
    outb(COM1_BASE + UART_MCR, UART_MCR_IRQ_ON);
    outb(COM1_BASE + UART_IER, UART_IER_RDA);
}

/* IRQ 4, and the polling fallback of cpu_idle(): move what the UART holds
 * into the ring.  Reading RBR until LSR.DR clears drops the UART's interrupt
 * line, so the next byte makes a new edge for the (edge-triggered) PIC. */
void serial_poll_input(void)
{
    uint32_t before = rx_head;
    while (rx_head - rx_tail < CONSOLE_RX_SIZE) {
        if (!(inb(COM1_BASE + UART_LSR) & UART_LSR_DR)) {
            if (rx_head != before)
                poll_wake(&console_input);
            return;
        }
        rx_ring[rx_head++ % CONSOLE_RX_SIZE] = inb(COM1_BASE + UART_RBR);
    }
    poll_wake(&console_input);
    if (!rx_stopped) {                  /* full: leave the rest in the UART */
        rx_stopped = 1;
        outb(COM1_BASE + UART_IER, 0);
    }
}

int serial_input_ready(void)
{
    return rx_head != rx_tail;
}

uint32_t serial_input_count(void)
{
    return rx_head - rx_tail;
}

/* Call only when serial_input_ready(). */
uint8_t serial_take_byte(void)
{
    uint8_t c = rx_ring[rx_tail++ % CONSOLE_RX_SIZE];
    if (rx_stopped) {                   /* room again: interrupts back on */
        rx_stopped = 0;
        outb(COM1_BASE + UART_IER, UART_IER_RDA);
    }
    return c;
}
