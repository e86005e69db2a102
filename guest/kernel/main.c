/*
 * kmain: from long mode (entry.S) to the first program in ring 3.
 * Boot order matters: exceptions are reported from cpu_init on; the boot
 * info is copied before the page allocator may reuse its memory.
 *
 * Module 0 is either a newc cpio archive (the root file system: unpacked
 * into RAM, and the program is the first word after "--", looked up in
 * PATH, else /init, else /bin/sh), or a single static ELF (it becomes
 * /init, argv[0] "init", the words after "--" its arguments).
 */
#include "apic.h"
#include "bootinfo.h"
#include "clock.h"
#include "cmdline.h"
#include "cpu.h"
#include "fs/vfs.h"
#include "irq.h"
#include "kernel.h"
#include "mm/mm.h"
#include "pic.h"
#include "proc/task.h"
#include "serial.h"

void kmain(uint32_t start_info_pa) __attribute__((noreturn));

/* What Linux's init gets (init/main.c), with the container launcher's PATH. */
static char *const init_env[] = { "HOME=/", "TERM=linux", "PATH=" INIT_PATH, 0 };

/* The single-ELF module as /init: a file whose pages are the module's. */
static void install_program(const struct mem_range *m)
{
    struct inode *ino = inode_new(S_IFREG | 0755);
    if (!ino || dentry_add(root_inode, "init", 4, ino) < 0)
        panic("out of memory");
    ino->data.extent_pa = m->start;
    ino->data.extent_pages = ALIGN_UP(m->end - m->start, PAGE_SIZE) / PAGE_SIZE;
    ino->size = (int64_t)(m->end - m->start);
}

/* A name without '/' through INIT_PATH, into buf: 1 if found. */
static int search_path(const char *name, char *buf, size_t size)
{
    const char *dir = INIT_PATH;
    size_t n = strlen(name);
    while (*dir) {
        const char *end = dir;
        while (*end && *end != ':')
            end++;
        size_t d = (size_t)(end - dir);
        if (d + 1 + n + 1 <= size) {
            memcpy(buf, dir, d);
            buf[d] = '/';
            memcpy(buf + d + 1, name, n + 1);
            struct nameidata nd;
            long r = path_walk(root_inode, buf, LOOKUP_FOLLOW, &nd);
            int found = r == 0 && S_ISREG(nd.inode->mode);
            nd_release(&nd);
            if (found)
                return 1;
        }
        dir = *end ? end + 1 : end;
    }
    return 0;
}

static int has_slash(const char *s)
{
    while (*s && *s != '/')
        s++;
    return *s == '/';
}

static const char *reason(long err)
{
    switch (err) {
    case -ENOENT:  return "No such file or directory";
    case -EACCES:  return "Permission denied (not an executable file)";
    case -EISDIR:  return "Is a directory";
    case -ENOEXEC: return "Exec format error (not a static x86-64 ELF)";
    case -ELIBBAD: return "dynamically linked: only static programs run here (no ELF interpreter)";
    case -E2BIG:   return "Argument list too long";
    case -ENOMEM:  return "out of memory";
    default:       return "cannot execute";
    }
}

static void run_init(char *path, char *const argv[]) __attribute__((noreturn));
static void run_init(char *path, char *const argv[])
{
    vfs_wall_clock = 1;
    long err = exec_file(path, argv, init_env);
    serial_start_line();
    serial_puts("panic: cannot run ");
    serial_puts(path);
    serial_puts(": ");
    serial_puts(reason(err));
    serial_puts("\n");
    vm_exit(EXIT_PANIC);
}

void kmain(uint32_t start_info_pa)
{
    /* On the boot stack, not in .bss: nothing has to zero them. */
    struct boot_info boot_info;
    char *words[MAX_ARGS + 1];
    static char path[PATH_MAX] __attribute__((section(".noinit")));

    cpu_init();
    apic_virtual_wire();    /* the PIC's INTR reaches the CPU */
    pic_init();             /* remapped, all masked: nothing interrupts the calibration */
    clock_init();           /* the TSC rate, maybe measured with the PIT */
    irq_init();             /* timer and COM1 input; IF stays 0 until ring 3 */
    pvh_parse(start_info_pa, &boot_info);
    mm_init(&boot_info);
    if (!boot_info.has_module)
        panic("no program (module 0)");

    vfs_init();
    task_init();
    /* After mm_init: virtio_mmio.device= slots are checked against RAM. */
    int nwords = cmdline_args(boot_info.cmdline, words + 1, MAX_ARGS);
    const struct mem_range *m = &boot_info.module;
    int archive = cpio_is_archive(phys_to_virt(m->start), m->end - m->start);
    if (archive)
        cpio_unpack(m->start, m->end - m->start);
    else
        install_program(m);
    devices_init();
    procfs_init();
    sysfs_init();

    if (!archive) {
        static char init[] = "init";
        words[0] = init;
        memcpy(path, "/init", 6);
        run_init(path, words);
    }
    char **argv = words + 1;
    if (nwords == 0) {
        static char init[] = "/init", sh[] = "/bin/sh";
        struct nameidata nd;
        long r = path_walk(root_inode, init, LOOKUP_FOLLOW, &nd);
        nd_release(&nd);
        argv[0] = r == 0 ? init : sh;
        argv[1] = 0;
    }
    if (has_slash(argv[0]) || !search_path(argv[0], path, sizeof path)) {
        size_t n = strlen(argv[0]);
        memcpy(path, argv[0], MIN(n + 1, sizeof path));
        path[sizeof path - 1] = 0;
    }
    run_init(path, argv);
}
