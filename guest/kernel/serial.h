/* COM1 16550A: the console for kernel messages and user stdio. */
#ifndef SERIAL_H
#define SERIAL_H
#include <stddef.h>
#include <stdint.h>

void serial_write(const char *buf, size_t len);
void serial_puts(const char *s);
void serial_put_hex(uint64_t v);       /* "0x1f" */
void serial_put_dec(uint64_t v);
void serial_start_line(void);          /* newline unless at the start of a line */
/* Input (interrupt driven, IF=0 callers only). */
void serial_init_input(void);          /* IER: received data available -> IRQ 4 */
void serial_poll_input(void);          /* UART -> ring: the IRQ 4 handler */
int serial_input_ready(void);          /* the ring holds a byte */
uint32_t serial_input_count(void);     /* bytes waiting in the ring */
uint8_t serial_take_byte(void);        /* only when serial_input_ready() */
struct waitq;
extern struct waitq console_input;     /* woken when the ring gains bytes */

#endif
