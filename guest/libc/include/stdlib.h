/* Process exit, number parsing and a small heap on brk. */
#ifndef LIBC_STDLIB_H
#define LIBC_STDLIB_H

#include <stddef.h>

#define EXIT_SUCCESS 0
#define EXIT_FAILURE 1

/* Ends the process with exit_group(status). */
__attribute__((noreturn)) void exit(int status);
/* Ends the process with SIGABRT-like status 134 (no signal is raised). */
__attribute__((noreturn)) void abort(void);

/* Parse an integer in `base` (2..36, or 0 for C prefixes 0x / 0).
 * Leading spaces and a sign are accepted; *end (if not NULL) is set after
 * the last digit used. No overflow detection. */
long strtol(const char *s, char **end, int base);
unsigned long strtoul(const char *s, char **end, int base);
int atoi(const char *s);

/* A bump allocator on brk: blocks are 16-byte aligned; free() only gives
 * memory back when the block is the most recent one. Returns NULL when the
 * kernel refuses to move the break. */
void *malloc(size_t size);
void *calloc(size_t count, size_t size);
void free(void *ptr);

#endif
