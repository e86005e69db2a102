/* CRC-32 (zlib's), one table lookup per byte. The table is built on first use. */
#include <crc32.h>

static uint32_t table[256];

static void build_table(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[n] = c;
    }
}

uint32_t crc32(uint32_t crc, const void *data, size_t len)
{
    const uint8_t *p = data;

    if (!table[1])
        build_table();
    crc = ~crc;
    while (len--)
        crc = table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}
