/*
 * Loading a program: a static x86-64 ELF from the file system (System V
 * gABI, x86-64 psABI), ET_EXEC at its addresses or ET_DYN (static-pie) at
 * USER_PIE_BASE, into a new address space.
 *
 * Each PT_LOAD becomes regions (vma.c): file-backed for the bytes from the
 * file (ending at p_filesz: beyond it, zeroes), anonymous for the whole
 * pages of .bss after them.  Pages are entered at once rather than on first
 * touch, because here a fault costs far more than a PTE: read-only pages of
 * the boot image are mapped in place (PTE_BORROWED), other file pages are
 * copied, and the .bss pages are mapped unzeroed and zeroed in ring 3 by the
 * stub on the way to the entry point (user_stub.S).  Segments that share a
 * page boundary (unusual linker output) share one private page with the
 * union of their permissions.
 *
 * The stack (psABI 3.4.1, as Linux builds it), from the top down: the
 * execfn string, the argument and environment strings, "x86_64", 16
 * AT_RANDOM bytes, then argc, argv[], NULL, envp[], NULL, auxv pairs, with
 * RSP at argc and 16-byte aligned.
 */
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "proc/thread.h"
#include "proc/wait.h"
#include "x86.h"

extern struct waitq child_wq;           /* exit.c */

#define PT_LOAD 1
#define PT_INTERP 3
#define PF_X 1
#define PF_W 2
#define PF_R 4
#define ET_EXEC 2
#define ET_DYN 3
#define EM_X86_64 62
#define MAX_PHNUM 64
#define STACK_INITIAL (16 * PAGE_SIZE)  /* the stack region at exec; it grows on faults */
#define HWCAP_CPUID_LEAF1_EDX 1         /* AT_HWCAP on x86: CPUID.1:EDX, as Linux gives it */

struct elf64_ehdr {
    unsigned char ident[16];
    uint16_t type, machine;
    uint32_t version;
    uint64_t entry, phoff, shoff;
    uint32_t flags;
    uint16_t ehsize, phentsize, phnum, shentsize, shnum, shstrndx;
};

struct elf64_phdr {
    uint32_t type, flags;
    uint64_t offset, vaddr, paddr, filesz, memsz, align;
};

struct image {
    struct inode *inode;
    struct elf64_ehdr eh;
    struct elf64_phdr ph[MAX_PHNUM];
    uint64_t bias;                      /* load address - link address */
    uint64_t phdr_va, end;
    uint64_t zero_start, zero_end;      /* the .bss run the stub zeroes */
};

static uint32_t prot_of(uint32_t pflags)
{
    return (pflags & PF_R ? PROT_READ : 0) | (pflags & PF_W ? PROT_WRITE : 0) | (pflags & PF_X ? PROT_EXEC : 0);
}

static long read_headers(struct image *im)
{
    struct inode *ino = im->inode;
    static const unsigned char magic[7] = { 0x7f, 'E', 'L', 'F', 2 /* 64-bit */, 1 /* LE */, 1 };
    if (inode_read_kernel(ino, 0, &im->eh, sizeof im->eh) != sizeof im->eh ||
        memcmp(im->eh.ident, magic, sizeof magic) != 0 || im->eh.machine != EM_X86_64 ||
        (im->eh.type != ET_EXEC && im->eh.type != ET_DYN))
        return -ENOEXEC;
    if (im->eh.phentsize != sizeof(struct elf64_phdr) || im->eh.phnum == 0 || im->eh.phnum > MAX_PHNUM)
        return -ENOEXEC;
    uint64_t bytes = (uint64_t)im->eh.phnum * sizeof(struct elf64_phdr);
    if (inode_read_kernel(ino, im->eh.phoff, im->ph, bytes) != bytes)
        return -ENOEXEC;
    uint64_t first = ~0ull, size = (uint64_t)ino->size;
    for (int i = 0; i < im->eh.phnum; i++) {
        struct elf64_phdr *ph = &im->ph[i];
        if (ph->type == PT_INTERP)
            return -ELIBBAD;            /* dynamically linked: no ELF interpreter is loaded here */
        if (ph->type != PT_LOAD || ph->memsz == 0)
            continue;
        if (ph->filesz > ph->memsz || ph->offset > size || ph->filesz > size - ph->offset ||
            (ph->vaddr - ph->offset) % PAGE_SIZE || ph->vaddr + ph->memsz < ph->vaddr)
            return -ENOEXEC;
        first = MIN(first, ph->vaddr);
    }
    if (first == ~0ull)
        return -ENOEXEC;
    im->bias = im->eh.type == ET_DYN ? USER_PIE_BASE - ALIGN_DOWN(first, PAGE_SIZE) : 0;
    for (int i = 0; i < im->eh.phnum; i++) {
        struct elf64_phdr *ph = &im->ph[i];
        if (ph->type == PT_LOAD && ph->memsz &&
            (ph->vaddr + im->bias < USER_MIN || ph->vaddr + im->bias + ph->memsz > USER_MMAP_BASE))
            return -ENOEXEC;            /* outside user space */
    }
    return 0;
}

/* The page at va of segment ph: file bytes up to p_filesz, zeroes after;
 * mapped in place when it is a whole read-only page of the boot image. */
static long load_page(struct mm *mm, struct image *im, const struct elf64_phdr *ph, uint64_t va)
{
    uint64_t seg_va = ph->vaddr + im->bias;
    uint64_t lo = MAX(va, seg_va), hi = MIN(va + PAGE_SIZE, seg_va + ph->memsz);
    uint64_t file_hi = MIN(hi, seg_va + ph->filesz);
    uint64_t flags = pte_flags(prot_of(ph->flags));
    uint64_t *pte = pte_lookup(mm, va, 1), pa;
    if (!pte)
        return -ENOMEM;
    uint64_t index = (ph->offset + (va - seg_va)) / PAGE_SIZE;
    if (!*pte && !(ph->flags & PF_W) && file_hi == hi && (pa = inode_borrowable_page(im->inode, index))) {
        *pte = pa | (flags & ~(uint64_t)PTE_W) | PTE_BORROWED;
        return 0;
    }
    if (*pte) {                         /* shared with the previous segment: one private page */
        flags = ((*pte | flags) & PTE_W) | (*pte & flags & pte_nx) | PTE_P | PTE_U;
        if (*pte & PTE_BORROWED) {
            if (!(pa = alloc_page_unzeroed()))
                return -ENOMEM;
            memcpy(phys_to_virt(pa), phys_to_virt(*pte & PTE_ADDR_MASK), PAGE_SIZE);
        } else {
            pa = *pte & PTE_ADDR_MASK;
        }
        memset((char *)phys_to_virt(pa) + (lo - va), 0, hi - lo);
    } else if (!(pa = alloc_page())) {
        return -ENOMEM;
    }
    if (file_hi > lo)
        inode_read_kernel(im->inode, ph->offset + (lo - seg_va), (char *)phys_to_virt(pa) + (lo - va), file_hi - lo);
    *pte = pa | flags;
    return 0;
}

static long load_segment(struct mm *mm, struct image *im, const struct elf64_phdr *ph)
{
    uint64_t seg_va = ph->vaddr + im->bias, prot = prot_of(ph->flags);
    uint64_t start = ALIGN_DOWN(seg_va, PAGE_SIZE);
    uint64_t file_end = ALIGN_UP(seg_va + ph->filesz, PAGE_SIZE), end = ALIGN_UP(seg_va + ph->memsz, PAGE_SIZE);
    uint64_t bss_lo = file_end, bss_hi = ALIGN_DOWN(seg_va + ph->memsz, PAGE_SIZE);
    uint64_t first_free = MAX(start, im->end);          /* a page shared with the last segment stays its */
    if (file_end > first_free) {
        struct vma *v = vma_new(first_free, file_end, (uint32_t)prot, 0, im->inode,
                                ALIGN_DOWN(ph->offset, PAGE_SIZE) + (first_free - start));
        if (!v)
            return -ENOMEM;
        v->file_end = seg_va + ph->filesz;
        vma_insert(mm, v);
    }
    if (end > MAX(file_end, first_free)) {
        struct vma *v = vma_new(MAX(file_end, first_free), end, (uint32_t)prot, VMA_ANON, 0, 0);
        if (!v)
            return -ENOMEM;
        vma_insert(mm, v);
    }
    for (uint64_t va = start; va < MIN(bss_lo, end); va += PAGE_SIZE)
        if (load_page(mm, im, ph, va) < 0)
            return -ENOMEM;
    if (bss_hi > bss_lo) {
        if (map_fresh_pages(mm, bss_lo, bss_hi, pte_flags((uint32_t)prot)) < 0)
            return -ENOMEM;
        if (im->zero_start == im->zero_end && (prot & PROT_WRITE)) {
            im->zero_start = bss_lo;    /* zeroed in ring 3 on the way to the entry point */
            im->zero_end = bss_hi;
        } else {
            zero_user_range(mm, bss_lo, bss_hi);
        }
    }
    for (uint64_t va = MAX(bss_lo, bss_hi); va < end; va += PAGE_SIZE)
        if (load_page(mm, im, ph, va) < 0)      /* the partial last page of .bss */
            return -ENOMEM;
    im->end = end;
    return 0;
}

static long load_image(struct mm *mm, struct image *im)
{
    for (int i = 0; i < im->eh.phnum; i++) {
        struct elf64_phdr *ph = &im->ph[i];
        if (ph->type != PT_LOAD || ph->memsz == 0)
            continue;
        if (ph->vaddr + im->bias < ALIGN_DOWN(im->end, PAGE_SIZE))
            return -ENOEXEC;            /* unsorted or overlapping (gABI: sorted by address) */
        long r = load_segment(mm, im, ph);
        if (r < 0)
            return r;
        /* The program headers, for AT_PHDR: in a segment that maps them. */
        if (!im->phdr_va && im->eh.phoff >= ph->offset &&
            im->eh.phoff + im->eh.phnum * sizeof *ph <= ph->offset + ph->filesz)
            im->phdr_va = ph->vaddr + im->bias + (im->eh.phoff - ph->offset);
    }
    return 0;
}

static uint64_t push_bytes(uint64_t *sp, const void *data, uint64_t len)
{
    *sp -= len;
    memcpy((void *)*sp, data, len);
    return *sp;
}

/* Strings and tables on the new stack (the new mm is active); 0 or -E2BIG. */
static long build_stack(struct image *im, const char *path, char *const argv[], char *const envp[],
                        uint64_t *rsp)
{
    int argc = 0, envc = 0;
    uint64_t strings = strlen(path) + 1 + sizeof "x86_64" + 16;
    while (argv[argc])
        strings += strlen(argv[argc++]) + 1;
    while (envp[envc])
        strings += strlen(envp[envc++]) + 1;
    uint64_t words = 1 + argc + 1 + envc + 1 + 2 * 20;
    uint64_t need = ALIGN_UP(strings + words * 8 + 64, PAGE_SIZE);
    if (need > STACK_INITIAL)
        return -E2BIG;
    if (!user_ok(USER_STACK_TOP - need, need, 1))      /* fault the pages in: written from ring 0 */
        return -ENOMEM;

    uint64_t sp = USER_STACK_TOP;
    uint64_t execfn = push_bytes(&sp, path, strlen(path) + 1);
    uint64_t *table = kmalloc((uint64_t)(argc + envc + 2) * 8);
    if (!table)
        return -ENOMEM;
    current->env_end = sp;
    for (int i = envc - 1; i >= 0; i--)
        table[argc + 1 + i] = push_bytes(&sp, envp[i], strlen(envp[i]) + 1);
    current->env_start = current->arg_end = sp;
    for (int i = argc - 1; i >= 0; i--)
        table[i] = push_bytes(&sp, argv[i], strlen(argv[i]) + 1);
    current->arg_start = sp;
    uint64_t platform = push_bytes(&sp, "x86_64", sizeof "x86_64");
    sp = ALIGN_DOWN(sp, 16);
    uint64_t seed = rdtsc() * 0x9e3779b97f4a7c15ull;      /* AT_RANDOM: not cryptographic */
    uint64_t random[2] = { seed, seed ^ (seed >> 29) ^ 0xbf58476d1ce4e5b9ull };
    uint64_t random_va = push_bytes(&sp, random, sizeof random);

    uint32_t a, b, c, d;
    cpuid(1, &a, &b, &c, &d);
    (void)HWCAP_CPUID_LEAF1_EDX;
    const uint64_t auxv[][2] = {
        { AT_PHDR, im->phdr_va }, { AT_PHENT, ELF64_PHDR_SIZE }, { AT_PHNUM, im->eh.phnum },
        { AT_PAGESZ, PAGE_SIZE }, { AT_BASE, 0 }, { AT_FLAGS, 0 }, { AT_ENTRY, im->eh.entry + im->bias },
        { AT_UID, 0 }, { AT_EUID, 0 }, { AT_GID, 0 }, { AT_EGID, 0 }, { AT_SECURE, 0 },
        { AT_HWCAP, d }, { AT_HWCAP2, 0 }, { AT_CLKTCK, USER_HZ }, { AT_RANDOM, random_va },
        { AT_EXECFN, execfn }, { AT_PLATFORM, platform }, { AT_MINSIGSTKSZ, MINSIGSTKSZ },
        { AT_NULL, 0 },
    };
    uint64_t total = (1 + (uint64_t)argc + 1 + (uint64_t)envc + 1) * 8 + sizeof auxv;
    sp = ALIGN_DOWN(sp - total, 16);
    uint64_t *w = (uint64_t *)sp;
    *w++ = (uint64_t)argc;
    for (int i = 0; i < argc; i++)
        *w++ = table[i];
    *w++ = 0;
    for (int i = 0; i < envc; i++)
        *w++ = table[argc + 1 + i];
    *w++ = 0;
    memcpy(w, auxv, sizeof auxv);
    kfree(table, (uint64_t)(argc + envc + 2) * 8);
    *rsp = sp;
    return 0;
}

/* The new program's name: /proc/self/exe, and comm (the last component). */
static void set_identity(struct inode *ino, const char *path)
{
    if (current->exe)
        inode_put(current->exe);
    inode_get(ino);
    current->exe = ino;
    if (!current->exe_path && !(current->exe_path = kmalloc(PATH_MAX)))
        panic("out of memory");
    size_t n = strlen(path);
    if (path[0] == '/') {
        memcpy(current->exe_path, path, n + 1);
    } else {                            /* relative: the working directory before it */
        long d = dir_path(current->cwd, current->exe_path, PATH_MAX);
        if (d < 0 || (size_t)d + 1 + n + 1 > PATH_MAX)
            d = 0;
        if (d > 1)
            current->exe_path[d++] = '/';
        memcpy(current->exe_path + (d == 1 ? 1 : d), path, n + 1);
    }
    const char *base = path + n;
    while (base > path && base[-1] != '/')
        base--;
    memset(current->comm, 0, TASK_COMM_LEN);
    memcpy(current->comm, base, MIN(strlen(base), (size_t)TASK_COMM_LEN - 1));
}

static long exec_elf(struct inode *ino, const char *path, char *const argv[], char *const envp[]);
static long exec_script(struct inode *ino, const char *path, char *const argv[], char *const envp[], int depth);

static long exec_at_depth(const char *path, char *const argv[], char *const envp[], int depth)
{
    struct nameidata nd;
    long r = path_walk(current->cwd, path, LOOKUP_FOLLOW, &nd);
    struct inode *ino = nd.inode;
    nd_release(&nd);
    if (r)
        return r;
    if (S_ISDIR(ino->mode))
        return -EISDIR;
    if (!S_ISREG(ino->mode) || !(ino->mode & S_IXUGO) || ino->ops)
        return -EACCES;
    char magic[2];
    if (inode_read_kernel(ino, 0, magic, 2) == 2 && magic[0] == '#' && magic[1] == '!')
        return exec_script(ino, path, argv, envp, depth);
    return exec_elf(ino, path, argv, envp);
}

long exec_file(const char *path, char *const argv[], char *const envp[])
{
    return exec_at_depth(path, argv, envp, 0);
}

/* "#!interpreter [one argument]" (binfmt_script): the interpreter runs with
 * argv = interpreter, [argument,] the script's path, argv[1..].  Linux
 * allows 4 levels of interpreters that are scripts themselves. */
#define SCRIPT_LINE_MAX 256             /* BINPRM_BUF_SIZE */
#define SCRIPT_DEPTH_MAX 4
/* Kernel copies that must go when exec succeeds (it does not return):
 * execve's arguments, and each script level's line and argv. */
static struct { char *line; char **argv; uint64_t size; } script_bufs[SCRIPT_DEPTH_MAX];
static struct { char *path; char **argv, **envp; long argc, envc; } execve_args;
static void free_strings(char **v, int n);

static void release_script(int depth)
{
    if (script_bufs[depth].argv)
        kfree(script_bufs[depth].argv, script_bufs[depth].size);
    if (script_bufs[depth].line)
        kfree(script_bufs[depth].line, SCRIPT_LINE_MAX);
    script_bufs[depth].argv = 0;
    script_bufs[depth].line = 0;
}

static void release_execve_args(void)
{
    if (execve_args.argv)
        free_strings(execve_args.argv, (int)execve_args.argc);
    if (execve_args.envp)
        free_strings(execve_args.envp, (int)execve_args.envc);
    if (execve_args.path)
        kfree(execve_args.path, PATH_MAX);
    execve_args.argv = execve_args.envp = 0;
    execve_args.path = 0;
}

/* exec_elf's last step: nothing refers to them any more. */
static void release_exec_copies(void)
{
    for (int d = 0; d < SCRIPT_DEPTH_MAX; d++)
        release_script(d);
    release_execve_args();
}

static long exec_script(struct inode *ino, const char *path, char *const argv[], char *const envp[], int depth)
{
    if (depth >= SCRIPT_DEPTH_MAX)
        return -ELOOP;
    char *line = kmalloc(SCRIPT_LINE_MAX);
    if (!line)
        return -ENOMEM;
    uint64_t n = inode_read_kernel(ino, 2, line, SCRIPT_LINE_MAX - 1);
    line[n] = 0;
    char *p = line, *end;
    for (end = p; *end && *end != '\n'; end++)
        ;
    *end = 0;
    while (*p == ' ' || *p == '\t')
        p++;
    char *interp = p, *arg = 0;
    while (*p && *p != ' ' && *p != '\t')
        p++;
    if (*p) {
        *p++ = 0;
        while (*p == ' ' || *p == '\t')
            p++;
        for (char *e = p + strlen(p); e > p && (e[-1] == ' ' || e[-1] == '\t'); e--)
            e[-1] = 0;
        if (*p)
            arg = p;                    /* the rest of the line, one argument */
    }
    long r = -ENOEXEC;
    int argc = 0;
    while (argv[argc])
        argc++;
    uint64_t size = (uint64_t)(argc + 3) * sizeof(char *);
    char **nargv = kmalloc(size);
    script_bufs[depth].line = line;
    script_bufs[depth].argv = nargv;
    script_bufs[depth].size = size;
    if (*interp && nargv) {
        int k = 0;
        nargv[k++] = interp;
        if (arg)
            nargv[k++] = arg;
        nargv[k++] = (char *)path;
        for (int i = 1; i <= argc; i++)     /* and the NULL */
            nargv[k++] = argv[i];
        r = exec_at_depth(interp, nargv, envp, depth + 1);
    } else if (!nargv) {
        r = -ENOMEM;
    }
    release_script(depth);
    return r;
}

static long exec_elf(struct inode *ino, const char *path, char *const argv[], char *const envp[])
{
    long r;
    struct image *im = kzalloc(sizeof *im);
    if (!im)
        return -ENOMEM;
    im->inode = ino;
    struct mm *mm = 0;
    if ((r = read_headers(im)) < 0 || !(mm = mm_create()) || (r = load_image(mm, im)) < 0) {
        if (mm)
            mm_destroy(mm);
        kfree(im, sizeof *im);
        return r ? r : -ENOMEM;
    }
    struct vma *stack = vma_new(USER_STACK_TOP - STACK_INITIAL, USER_STACK_TOP, PROT_READ | PROT_WRITE,
                                VMA_ANON | VMA_STACK, 0, 0);
    if (!stack)
        panic("out of memory");
    vma_insert(mm, stack);
    mm->stack_limit = MAX(USER_STACK_TOP - MIN(current->rlim_cur[RLIMIT_STACK], (uint64_t)USER_STACK_TOP),
                          (uint64_t)USER_WINDOW_BASE + USER_WINDOW_PAGES * PAGE_SIZE);
    struct vma *window = vma_new(USER_WINDOW_BASE, USER_WINDOW_BASE + USER_WINDOW_PAGES * PAGE_SIZE, PROT_READ,
                                 VMA_WINDOW, 0, 0);
    if (!window)
        panic("out of memory");
    vma_insert(mm, window);
    mm->window = window;
    uspace_map_stub(mm);
    mm_brk_init(mm, im->end);

    if ((r = thread_exec_prepare()) < 0) {     /* the other threads end first (issue 15c) */
        mm_destroy(mm);
        kfree(im, sizeof *im);
        return r;
    }
    /* No way back from here: the old program is gone. */
    struct mm *old = current->mm;
    current->mm = mm;
    mm_activate(mm);
    if (old) {                          /* a clone(CLONE_VM) parent may still use it */
        mm_exit(old);
        mm_put(old);
    }
    struct regs regs;
    memset(&regs, 0, sizeof regs);
    if ((r = build_stack(im, path, argv, envp, &regs.rsp)) < 0) {
        kfree(im, sizeof *im);
        if (old) {                      /* a process's exec: its program is gone */
            release_exec_copies();
            do_exit(SIGKILL);
        }
        return r;                       /* the boot reports it and ends the VM */
    }
    if (old) {                          /* issue 15a: what exec resets in a process */
        files_close_on_exec(current->files);
        if (current->vfork_parent) {
            current->vfork_parent = 0;
            wake_up(&child_wq);
        }
    }
    set_identity(ino, path);
    for (int sig = 1; old && sig <= NSIG; sig++)    /* handlers do not survive exec; ignoring does */
        if (current->sighand->action[sig].handler != SIG_IGN)
            current->sighand->action[sig] = (struct k_sigaction){ 0 };
    current->altstack_sp = current->altstack_size = 0;
    current->altstack_flags = SS_DISABLE;
    wrmsr(MSR_FS_BASE, 0);
    wrmsr(MSR_GS_BASE, 0);
    current->fs_base = current->gs_base = 0;
    /* The FPU as Linux starts a program (fpstate_init): x87 control word 0x37f (64-bit
     * precision, exceptions masked), MXCSR 0x1f80, the rest zero.  The CPU's reset value
     * (0x40) would round every x87 result to single precision (musl's printf of a double
     * uses it).  One fxrstor: this machine's KVM cannot emulate ldmxcsr in ring 0. */
    static const struct { uint16_t fcw, fsw; uint8_t rest[20]; uint32_t mxcsr, mask; uint8_t regs[480]; }
        initial_fpu __attribute__((aligned(16))) = { .fcw = FCW_DEFAULT, .mxcsr = MXCSR_DEFAULT };
    _Static_assert(sizeof initial_fpu == FXSAVE_SIZE, "fxsave layout");
    __asm__ volatile("fxrstor64 %0" :: "m"(initial_fpu));

    /* All other registers start at zero (RDX = 0: no atexit function). */
    regs.rip = im->eh.entry + im->bias;
    regs.cs = USER_CS;
    regs.rflags = USER_RFLAGS_INIT;
    regs.ss = USER_DS;
    user_zero_on_return(&regs, im->zero_start, im->zero_end);   /* .bss, in ring 3 */
    kfree(im, sizeof *im);
    release_exec_copies();
    enter_user(&regs);
}

/* ---- execve (issue 15a) ----------------------------------------------------
 * The path, arguments and environment are copied into the kernel first (the
 * old address space goes before the new stack is built). */
#define EXEC_STRINGS_MAX 510            /* argv + envp entries: a kmalloc'd table */

static void free_strings(char **v, int n)
{
    for (int i = 0; i < n; i++)
        kfree(v[i], PAGE_SIZE);
    kfree(v, (EXEC_STRINGS_MAX + 2) * sizeof *v);
}

/* A NULL-terminated user array of strings (each under a page) into the
 * kernel: the count, or -errno. */
static long copy_strings(uint64_t uv, char ***out)
{
    char **v = kmalloc((EXEC_STRINGS_MAX + 2) * sizeof *v);
    if (!v)
        return -ENOMEM;
    long n = 0, r = 0;
    while (uv) {
        uint64_t p;
        if (copy_from_user(&p, uv + (uint64_t)n * 8, 8) < 0) {
            r = -EFAULT;
            break;
        }
        if (!p)
            break;
        if (n == EXEC_STRINGS_MAX) {
            r = -E2BIG;
            break;
        }
        if (!(v[n] = kmalloc(PAGE_SIZE))) {
            r = -ENOMEM;
            break;
        }
        n++;
        long len = strncpy_from_user(v[n - 1], p, PAGE_SIZE);
        if (len < 0) {
            r = len == -ENAMETOOLONG ? -E2BIG : len;
            break;
        }
    }
    if (r < 0) {
        free_strings(v, (int)n);
        return r;
    }
    v[n] = 0;
    *out = v;
    return n;
}

/* An empty argv becomes { "", NULL }, as Linux 5.18 on: no program sees
 * argc 0 (and argv[1] as its first environment string).  0 or -ENOMEM. */
static long argv_never_empty(char **v, long *argc)
{
    if (*argc != 0)
        return 0;
    if (!(v[0] = kmalloc(PAGE_SIZE)))
        return -ENOMEM;
    v[0][0] = 0;
    v[1] = 0;
    *argc = 1;
    return 0;
}

void sys_execve_regs(struct regs *r)
{
    long err;
    if (!(execve_args.path = kmalloc(PATH_MAX)))
        err = -ENOMEM;
    else if ((err = strncpy_from_user(execve_args.path, r->rdi, PATH_MAX)) >= 0 &&
             (err = execve_args.argc = copy_strings(r->rsi, &execve_args.argv)) >= 0 &&
             (err = argv_never_empty(execve_args.argv, &execve_args.argc)) >= 0 &&
             (err = execve_args.envc = copy_strings(r->rdx, &execve_args.envp)) >= 0)
        err = exec_file(execve_args.path, execve_args.argv, execve_args.envp);   /* only on failure */
    if (execve_args.argc < 0)
        execve_args.argv = 0;
    if (execve_args.envc < 0)
        execve_args.envp = 0;
    release_execve_args();
    r->rax = (uint64_t)err;
}
