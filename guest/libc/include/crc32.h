/* CRC-32 as in zlib, gzip and Ethernet (reflected polynomial 0xEDB88320). */
#ifndef LIBC_CRC32_H
#define LIBC_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0; crc32(crc32(0, a), b) == crc32(0, ab). */
uint32_t crc32(uint32_t crc, const void *data, size_t len);

#endif
