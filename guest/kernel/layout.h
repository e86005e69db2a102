/*
 * Every magic number of the tiny kernel, in one place, each with its source.
 * Included from C and from the .S files (so: plain #defines only, no casts
 * or suffixes outside the __ASSEMBLER__ guard).
 */
#ifndef LAYOUT_H
#define LAYOUT_H

/* ---- Physical memory ------------------------------------------------------ */

/* Where the kernel image is linked and loaded (kernel.ld repeats it).  The
 * PVH loader copies our PT_LOAD segments to their physical addresses. */
#define KERNEL_PHYS_BASE   0x100000
/* The whole image (text, data, bss, stacks) must end below 2 MiB: the low
 * identity map (one static page table, entry.S) covers only 1-2 MiB. */
#define KERNEL_PHYS_LIMIT  0x200000
/* The page allocator never hands out memory below this (BIOS data, the
 * loader's boot structures, option ROMs live there). */
#define LOW_MEMORY_END     0x100000

#define PAGE_SIZE          4096
/* Zeroed pages carried in the kernel's .data (page tables, first stack
 * pages), so that a small program needs no ring-0 zeroing at all. */
#define ZERO_POOL_PAGES    8
#define LARGE_PAGE_SIZE    0x200000        /* 2 MiB page (PDE.PS) */

/* ---- Virtual memory map ----------------------------------------------------
 *   [0, 1 MiB)              not mapped (user NULL dereferences fault)
 *   [1 MiB, 2 MiB)          kernel image, identity mapped, supervisor only
 *   [2 MiB, 1 GiB)          the user program: ELF segments, brk, stack, and
 *                           at the top the ring-3 zeroing stub (user_stub.S)
 *   DIRECT_MAP_BASE + pa    all RAM (up to DIRECT_MAP_LIMIT), supervisor only
 * The user program is linked at 0x400000, so VA = PA cannot be used for the
 * kernel's view of RAM: the kernel reads physical memory through the direct map.
 */
#define USER_MIN           0x200000
#define USER_MAX           0x40000000      /* one page directory of 4 KiB PTEs */
#define USER_STUB_VA       (USER_MAX - PAGE_SIZE)  /* user_stub.S, read-only + exec */
#define USER_STACK_TOP     (USER_MAX - 2 * PAGE_SIZE)  /* one guard page below the stub */
#define USER_STACK_MAX     0x800000        /* 8 MiB, grown on demand like Linux */
#define USER_BRK_LIMIT     (USER_STACK_TOP - USER_STACK_MAX - LARGE_PAGE_SIZE)
#define DIRECT_MAP_BASE    0xffff800000000000   /* PML4 slot 256, as Linux */
#define DIRECT_MAP_LIMIT   0x100000000     /* 4 GiB: 4 static page directories */
#define DIRECT_MAP_PDS     4

/* ---- Page-table entry bits (Intel SDM vol. 3, 4.5) ------------------------- */
#define PTE_P              0x1
#define PTE_W              0x2
#define PTE_U              0x4
#define PTE_PS             0x80            /* 2 MiB page in a PDE */
#define PTE_NX             0x8000000000000000
#define PTE_ADDR_MASK      0x000ffffffffff000
#define PT_ENTRIES         512             /* entries per page-table page */

/* ---- Segment selectors (GDT in entry.S).  The order is forced by
 * STAR/SYSRET: kernel SS = kernel CS + 8; user SS = STAR[63:48] + 8 and user
 * CS = STAR[63:48] + 16.  Same values as Linux. ---------------------------- */
#define KERNEL_CS32        0x08
#define KERNEL_CS          0x10
#define KERNEL_DS          0x18
#define USER_STAR_BASE     0x23            /* (0x20 | RPL 3), slot is unused */
#define USER_DS            0x2b
#define USER_CS            0x33
#define TSS_SEL            0x40
#define GDT_ENTRIES        10              /* 8 descriptors + 16-byte TSS */

/* ---- Control registers and MSRs (Intel SDM vol. 3, 2.5 and vol. 4) ------- */
#define CR0_PE             0x1
#define CR0_MP             0x2
#define CR0_EM             0x4
#define CR0_NE             0x20
#define CR0_WP             0x10000
#define CR0_PG             0x80000000
#define CR4_PAE            0x20
#define CR4_OSFXSR         0x200
#define CR4_OSXMMEXCPT     0x400

#define MSR_EFER           0xc0000080
#define MSR_STAR           0xc0000081
#define MSR_LSTAR          0xc0000082
#define MSR_SFMASK         0xc0000084
#define MSR_FS_BASE        0xc0000100
#define MSR_GS_BASE        0xc0000101
#define MSR_KERNEL_GS_BASE 0xc0000102
#define EFER_SCE           0x1
#define EFER_LME           0x100
#define EFER_NXE           0x800

/* RFLAGS bits */
#define RFLAGS_FIXED       0x2             /* bit 1 always reads 1 */
#define RFLAGS_TF          0x100
#define RFLAGS_IF          0x200
#define RFLAGS_DF          0x400
/* What user code may set through sigreturn/syscall return: CF PF AF ZF SF
 * TF DF OF AC.  Never IF or IOPL: no interrupt source is programmed yet
 * (under SeaBIOS the PIT would fire IRQ0 on vector 8), so user mode runs
 * with IF=0 for now. */
#define RFLAGS_USER_MASK   0x40dd5
/* SFMASK: flags cleared on syscall entry: TF IF DF IOPL NT AC. */
#define SYSCALL_RFLAGS_MASK 0x47700
/* Initial user RFLAGS. */
#define USER_RFLAGS_INIT   RFLAGS_FIXED

/* ---- Stacks (in the kernel image, see kernel.ld) --------------------------- */
#define KERNEL_STACK_SIZE  16384           /* boot stack = TSS.RSP0 stack */
#define IST_STACK_SIZE     4096            /* #DF, NMI, #MC */

/* ---- I/O ports ---------------------------------------------------------------- */
/* 16550A UART COM1 (PC16550D datasheet; QEMU hw/char/serial.c). */
#define COM1_BASE          0x3f8
#define UART_RBR           0               /* receive buffer (read) */
#define UART_THR           0               /* transmit holding (write) */
#define UART_LSR           5               /* line status */
#define UART_LSR_DR        0x01            /* data ready */
#define UART_LSR_THRE      0x20            /* transmitter holding register empty */
/* read(): how many LSR polls to wait for the next byte of a line before
 * returning what has arrived.  QEMU hands the UART one byte at a time,
 * asynchronously; 2000 polls are a few ms under KVM. */
#define CONSOLE_READ_POLLS 2000
/* QEMU isa-debug-exit (hw/misc/debugexit.c), -device isa-debug-exit,iobase=0xf4:
 * QEMU exits with (value << 1) | 1; our VMM exits with value. */
#define DEBUG_EXIT_PORT    0xf4

/* ---- Boot protocol: Xen PVH (xen/include/public/elfnote.h and
 * xen/include/public/arch-x86/hvm/start_info.h) -------------------------------- */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC    0x336ec578
#define E820_RAM           1
#define MAX_MEMMAP         32              /* entries we copy; more are ignored */
#define CMDLINE_MAX        2048            /* bytes of command line we keep */
#define MAX_ARGS           64              /* argv entries passed to the program */

/* ---- Exit statuses (tests depend on them) ------------------------------------ */
#define EXIT_PANIC         125             /* kernel error: 0x7d */
#define EXIT_SIGNAL_BASE   128             /* user killed by signal n: 128 + n */

/* ---- CPUID (Intel SDM vol. 2, CPUID; KVM/VMware timing leaf) ----------------- */
#define CPUID_1_ECX_HYPERVISOR   (1u << 31)
#define CPUID_EXT_BASE           0x80000000  /* EAX = highest extended leaf */
#define CPUID_EXT_FEATURES       0x80000001
#define CPUID_80000001_EDX_NX    (1u << 20)
#define CPUID_HV_BASE            0x40000000
#define CPUID_HV_TIMING          0x40000010  /* EAX = TSC frequency in kHz */
#define TSC_KHZ_DEFAULT          1000000     /* assume 1 GHz when unknown */

/* ---- Linux ABI constants (include/uapi/...) ---------------------------------- */
#define AT_NULL    0
#define AT_PHDR    3
#define AT_PHENT   4
#define AT_PHNUM   5
#define AT_PAGESZ  6
#define AT_ENTRY   9
#define AT_UID     11
#define AT_EUID    12
#define AT_GID     13
#define AT_EGID    14
#define AT_SECURE  23
#define AT_RANDOM  25
#define ELF64_PHDR_SIZE 56       /* sizeof(Elf64_Phdr), for AT_PHENT */

/* errno (include/uapi/asm-generic/errno-base.h, errno.h) */
#define EPERM    1
#define EBADF    9
#define EFAULT   14
#define EINVAL   22
#define ENOTTY   25
#define ENOSYS   38

#define SIGILL   4
#define SIGTRAP  5
#define SIGFPE   8
#define SIGKILL  9
#define SIGSEGV  11
#define SIGSTOP  19
#define NSIG     64

/* System call numbers (arch/x86/entry/syscalls/syscall_64.tbl) */
#define SYS_read            0
#define SYS_write           1
#define SYS_brk             12
#define SYS_rt_sigaction    13
#define SYS_rt_sigprocmask  14
#define SYS_rt_sigreturn    15
#define SYS_ioctl           16
#define SYS_writev          20
#define SYS_sched_yield     24
#define SYS_nanosleep       35
#define SYS_getpid          39
#define SYS_exit            60
#define SYS_uname           63
#define SYS_gettimeofday    96
#define SYS_getuid          102
#define SYS_getgid          104
#define SYS_geteuid         107
#define SYS_getegid         108
#define SYS_getppid         110
#define SYS_arch_prctl      158
#define SYS_gettid          186
#define SYS_set_tid_address 218
#define SYS_clock_gettime   228
#define SYS_exit_group      231

/* arch_prctl codes (arch/x86/include/uapi/asm/prctl.h) */
#define ARCH_SET_GS 0x1001
#define ARCH_SET_FS 0x1002
#define ARCH_GET_FS 0x1003
#define ARCH_GET_GS 0x1004
#define USER_CANONICAL_END 0x800000000000   /* first non-canonical user address */

/* Signals (include/uapi/asm-generic/signal-defs.h, siginfo.h; x86 ucontext.h) */
#define SIG_DFL       0
#define SIG_IGN       1
#define SIG_BLOCK     0
#define SIG_UNBLOCK   1
#define SIG_SETMASK   2
#define SA_SIGINFO    0x00000004
#define SA_RESTORER   0x04000000
#define SA_NODEFER    0x40000000
#define SA_RESETHAND  0x80000000
#define SEGV_MAPERR   1
#define SEGV_ACCERR   2
#define ILL_ILLOPN    2
#define FPE_INTDIV    1
#define SI_KERNEL     0x80
#define UC_SIGCONTEXT_SS 0x2
#define SS_DISABLE    2
#define SIGNAL_RED_ZONE 128      /* psABI red zone below the user RSP */

/* Misc. limits (include/uapi/linux/uio.h, utsname.h) */
#define UIO_MAXIOV     1024
#define UTSNAME_LEN    65

/* ---- Exception vectors (Intel SDM vol. 3, 6.3.1) and #PF error bits (4.7) --- */
#define VEC_DE  0
#define VEC_NMI 2
#define VEC_BP  3
#define VEC_UD  6
#define VEC_DF  8
#define VEC_GP  13
#define VEC_PF  14
#define VEC_MC  18
#define PF_ERR_PRESENT 0x1

#endif
