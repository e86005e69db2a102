/*
 * kmain: from long mode (entry.S) to the user program in ring 3.
 * Boot order matters: exceptions are reported from cpu_init on; the boot
 * info is copied before the page allocator may reuse its memory.
 */
#include "apic.h"
#include "bootinfo.h"
#include "clock.h"
#include "cmdline.h"
#include "cpu.h"
#include "elf.h"
#include "exec.h"
#include "irq.h"
#include "kernel.h"
#include "mm.h"
#include "pic.h"
#include "uspace.h"

void kmain(uint32_t start_info_pa) __attribute__((noreturn));

void kmain(uint32_t start_info_pa)
{
    /* On the boot stack, not in .bss: nothing has to zero them.  Both are
     * dead once the program runs (the stack is then reused for traps). */
    struct boot_info boot_info;
    char *argv[MAX_ARGS];

    cpu_init();
    apic_virtual_wire();    /* the PIC's INTR reaches the CPU */
    pic_init();             /* remapped, all masked: nothing interrupts the calibration */
    clock_init();           /* the TSC rate, maybe measured with the PIT */
    irq_init();             /* timer and COM1 input; IF stays 0 until ring 3 */
    pvh_parse(start_info_pa, &boot_info);
    mm_init(&boot_info);
    if (!boot_info.has_module)
        panic("no program (module 0)");

    struct elf_info program;
    elf_load(&boot_info.module, &program);
    uspace_init(program.end);
    /* After mm_init: virtio_mmio.device= slots are checked against RAM. */
    int argc = cmdline_args(boot_info.cmdline, argv, MAX_ARGS);
    exec_start(&program, argc, argv);
}
