/* A bump allocator on the program break.
 *
 * Each block is preceded by a 16-byte header holding its size, and blocks
 * are 16-byte aligned. malloc() moves the break up; free() moves it back
 * down only when freeing the most recent block, otherwise it does nothing.
 * That is enough for test programs that allocate a few large buffers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ALIGN 16

struct header {
    size_t size;            /* usable bytes after the header */
    size_t _pad;
};

static char *last_block;    /* the most recent block's user pointer */

static size_t round_up(size_t n)
{
    return (n + ALIGN - 1) & ~(size_t)(ALIGN - 1);
}

void *malloc(size_t size)
{
    if (size > SIZE_MAX / 2)
        return NULL;
    size = round_up(size);

    /* The first break may be unaligned; move it to a 16-byte boundary. */
    char *top = sbrk(0);
    size_t slack = round_up((uintptr_t)top) - (uintptr_t)top;
    char *base = sbrk((long)(slack + sizeof(struct header) + size));
    if (!base)
        return NULL;

    struct header *h = (struct header *)(base + slack);
    h->size = size;
    last_block = (char *)(h + 1);
    return last_block;
}

void *calloc(size_t count, size_t size)
{
    if (size && count > SIZE_MAX / size)
        return NULL;
    void *p = malloc(count * size);
    if (p)
        memset(p, 0, count * size);  /* brk memory may have been used before */
    return p;
}

void free(void *ptr)
{
    if (!ptr || ptr != last_block)
        return;
    struct header *h = (struct header *)ptr - 1;
    brk(h);
    last_block = NULL;
}
