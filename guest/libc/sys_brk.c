/* The program break: the raw brk call and sbrk on top of it. */
#include <syscall.h>
#include <unistd.h>

void *brk(void *addr)
{
    return (void *)syscall6(SYS_brk, (long)addr, 0, 0, 0, 0, 0);
}

void *sbrk(long increment)
{
    char *old = brk(0);

    if (increment == 0)
        return old;
    char *want = old + increment;
    if ((char *)brk(want) != want)
        return NULL;
    return old;
}
