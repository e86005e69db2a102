/*
 * The initial process stack (x86-64 psABI 3.4.1, as Linux builds it), from
 * the top down: argument strings, 16 AT_RANDOM bytes, padding, then
 * argc, argv[], NULL, envp[] (empty), NULL, auxv pairs, with RSP pointing at
 * argc and 16-byte aligned.  Then iretq into ring 3 at the ELF entry.
 */
#include "exec.h"
#include "kernel.h"
#include "layout.h"
#include "regs.h"
#include "uspace.h"
#include "x86.h"

#define NAUX 12     /* auxv pairs written below, AT_NULL included */

void exec_start(const struct elf_info *info, int argc, char **argv)
{
    uint64_t strings = 0;
    for (int i = 0; i < argc; i++)
        strings += strlen(argv[i]) + 1;

    uint64_t words = 1 + (argc + 1) + 1 + 2 * NAUX;
    uint64_t random_va = ALIGN_DOWN(USER_STACK_TOP - strings - 16, 16);
    uint64_t sp = random_va - words * 8;
    sp = ALIGN_DOWN(sp, 16);
    if (!user_ok(sp, USER_STACK_TOP - sp, 1))
        panic("out of memory");

    /* Strings at the very top. */
    uint64_t *table = (uint64_t *)sp;
    char *s = (char *)(USER_STACK_TOP - strings);
    table[0] = argc;
    for (int i = 0; i < argc; i++) {
        uint64_t n = strlen(argv[i]) + 1;
        memcpy(s, argv[i], n);
        table[1 + i] = (uint64_t)s;
        s += n;
    }
    table[1 + argc] = 0;            /* end of argv */
    table[2 + argc] = 0;            /* envp: empty */

    /* AT_RANDOM: not cryptographic, just different per boot. */
    uint64_t seed = rdtsc() * 0x9e3779b97f4a7c15ull;
    ((uint64_t *)random_va)[0] = seed;
    ((uint64_t *)random_va)[1] = seed ^ (seed >> 29) ^ 0xbf58476d1ce4e5b9ull;

    uint64_t *aux = &table[3 + argc];
    const uint64_t auxv[NAUX][2] = {
        { AT_PHDR, info->phdr_va }, { AT_PHENT, ELF64_PHDR_SIZE }, { AT_PHNUM, info->phnum },
        { AT_PAGESZ, PAGE_SIZE }, { AT_ENTRY, info->entry }, { AT_RANDOM, random_va },
        { AT_UID, 0 }, { AT_EUID, 0 }, { AT_GID, 0 }, { AT_EGID, 0 }, { AT_SECURE, 0 },
        { AT_NULL, 0 },
    };
    memcpy(aux, auxv, sizeof auxv);

    /* All other registers start at zero (RDX = 0: no atexit function). */
    struct regs r;
    memset(&r, 0, sizeof r);
    r.rip = info->entry;
    r.cs = USER_CS;
    r.rflags = USER_RFLAGS_INIT;
    r.rsp = sp;
    r.ss = USER_DS;
    user_zero_on_return(&r, info->zero_start, info->zero_end);  /* .bss, in ring 3 */
    enter_user(&r);
}
