/*
 * kmain: from long mode (entry.S) to the user program in ring 3.
 * Boot order matters: exceptions are reported from cpu_init on; the boot
 * info is copied before the page allocator may reuse its memory.
 */
#include "bootinfo.h"
#include "clock.h"
#include "cmdline.h"
#include "cpu.h"
#include "elf.h"
#include "exec.h"
#include "kernel.h"
#include "mm.h"
#include "uspace.h"

void kmain(uint32_t start_info_pa) __attribute__((noreturn));

void kmain(uint32_t start_info_pa)
{
    /* On the boot stack, not in .bss: nothing has to zero them.  Both are
     * dead once the program runs (the stack is then reused for traps). */
    struct boot_info boot_info;
    char *argv[MAX_ARGS];

    cpu_init();
    clock_init();
    pvh_parse(start_info_pa, &boot_info);
    mm_init(&boot_info);
    if (!boot_info.has_module)
        panic("no program (module 0)");

    struct elf_info program;
    elf_load(&boot_info.module, &program);
    uspace_init(program.end);
    int argc = cmdline_args(boot_info.cmdline, argv, MAX_ARGS);
    exec_start(&program, argc, argv);
}
