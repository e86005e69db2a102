/* COM1 16550A, polled: the console for kernel messages and user stdio. */
#ifndef SERIAL_H
#define SERIAL_H
#include <stddef.h>
#include <stdint.h>

void serial_write(const char *buf, size_t len);
void serial_puts(const char *s);
void serial_put_hex(uint64_t v);       /* "0x1f" */
void serial_put_dec(uint64_t v);
void serial_start_line(void);          /* newline unless at the start of a line */
int serial_byte_ready(void);
uint8_t serial_read_byte(void);        /* blocks (polls) */

#endif
