/* Small things every file needs: ending the VM, panics, memory helpers. */
#ifndef KERNEL_H
#define KERNEL_H
#include <stddef.h>
#include <stdint.h>

#define ALIGN_UP(x, a)   (((x) + (a) - 1) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define MIN(a, b)        ((a) < (b) ? (a) : (b))
#define MAX(a, b)        ((a) > (b) ? (a) : (b))

/* exit.c */
void vm_exit(uint32_t status) __attribute__((noreturn));
void panic(const char *reason) __attribute__((noreturn));

/* lib.c (gcc may also emit calls to memset/memcpy itself) */
void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strcmp(const char *a, const char *b);
void *memmove(void *dst, const void *src, size_t n);

#endif
