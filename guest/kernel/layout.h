/*
 * Every magic number of the tiny kernel, in one place, each with its source.
 * Included from C and from the .S files (so: plain #defines only, no casts
 * or suffixes outside the __ASSEMBLER__ guard).
 */
#ifndef LAYOUT_H
#define LAYOUT_H

/* The Linux ABI numbers (system calls, errno, signals) come from the header
 * shared with the libc; the flags and structure layouts of the Linux ABI are
 * in uapi.h. */
#include "linux_abi.h"

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
#define ZERO_POOL_PAGES    16              /* an address space's first page tables, and more */
#define LARGE_PAGE_SIZE    0x200000        /* 2 MiB page (PDE.PS) */

/* ---- Virtual memory map ----------------------------------------------------
 *   [0, 1 MiB)              not mapped (user NULL dereferences fault)
 *   [1 MiB, 2 MiB)          kernel image, identity mapped, supervisor only
 *                           (pt_kernel, shared by every address space)
 *   [2 MiB, USER_END)       the user program: ELF segments, brk, mmap
 *                           regions, the stack, and at the top the ring-3
 *                           stub page (user_stub.S)
 *   DIRECT_MAP_BASE + pa    all RAM (up to DIRECT_MAP_LIMIT), supervisor only
 * The user program is linked at 0x400000, so VA = PA cannot be used for the
 * kernel's view of RAM: the kernel reads physical memory through the direct map.
 * The user addresses are Linux's without randomization (arch/x86: TASK_SIZE,
 * ELF_ET_DYN_BASE, mmap_base = TASK_SIZE - 128 MiB gap).
 */
#define USER_MIN           0x200000
#define USER_END           0x7ffffffff000  /* TASK_SIZE_MAX: 47 bits minus a guard page */
#define USER_STUB_VA       (USER_END - PAGE_SIZE)  /* user_stub.S, read-only + exec */
#define USER_STACK_TOP     (USER_END - 2 * PAGE_SIZE)  /* one guard page below the stub */
#define USER_STACK_MAX     0x800000        /* 8 MiB, RLIMIT_STACK's default, grown on demand */
#define USER_MMAP_BASE     (USER_END - 0x8000000)  /* 0x7ffff7fff000: mmap grows down from here */
#define USER_PIE_BASE      0x555555554000  /* ELF_ET_DYN_BASE: where a static-pie is loaded */
/* The copy window (fs/data.c): pages of the boot image mapped read-only
 * here for the moment of a read(), so that the ring-3 stub copies them into
 * the reader's buffer at native speed (a 4 KiB copy in ring 0 is 512
 * emulated iterations on this machine's KVM).  Between mmap_base and the
 * stack's lowest address; a larger read, or any other page, is copied in
 * ring 0.  READ_STUB_MIN: below it the detour costs more than the copy. */
#define USER_WINDOW_BASE   0x7ffff8000000
#define USER_WINDOW_PAGES  8192            /* 32 MiB */
#define READ_STUB_MIN      512
#define DIRECT_MAP_BASE    0xffff800000000000   /* PML4 slot 256, as Linux */
#define DIRECT_MAP_LIMIT   0x100000000     /* 4 GiB: 4 static page directories */
#define DIRECT_MAP_PDS     4
#define PML4_DIRECT_SLOT   256

/* ---- Page-table entry bits (Intel SDM vol. 3, 4.5) ------------------------- */
#define PTE_P              0x1
#define PTE_W              0x2
#define PTE_U              0x4
#define PTE_PWT            0x8             /* with PCD and the default PAT: uncached */
#define PTE_PCD            0x10
#define PTE_PS             0x80            /* 2 MiB page in a PDE */
#define PTE_NX             0x8000000000000000
#define PTE_ADDR_MASK      0x000ffffffffff000
/* Software bit (ignored by the CPU): the page is not this address space's
 * own but a read-only page of the root file system's image (module 0),
 * which is never freed or written: unmapping leaves it, a write copies it. */
#define PTE_BORROWED       0x200
/* Software bit: a private page shared with another address space since a
 * fork, read-only until a write copies it (or finds it no longer shared). */
#define PTE_COW            0x800
/* Software bit (52, ignored by the CPU; 9-11 are taken): a page of a
 * MAP_SHARED mapping, the file's own page: fork shares it writable as it
 * is, and unmapping drops this mapping's count (page_put). */
#define PTE_SHARED         0x0010000000000000
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
 * TF DF OF AC.  Never IF or IOPL. */
#define RFLAGS_USER_MASK   0x40dd5
/* What every user RFLAGS has: bit 1, and IF: user mode always runs with
 * interrupts enabled (the PIC is remapped to 0x20-0x2f before the first
 * return to ring 3, pic.c).  The kernel itself runs with IF=0 except in
 * cpu_idle() (irq.c). */
#define USER_RFLAGS_SET    (RFLAGS_FIXED | RFLAGS_IF)
/* SFMASK: flags cleared on syscall entry: TF IF DF IOPL NT AC. */
#define SYSCALL_RFLAGS_MASK 0x47700
/* Initial user RFLAGS. */
#define USER_RFLAGS_INIT   USER_RFLAGS_SET

/* ---- Stacks (in the kernel image, see kernel.ld) --------------------------- */
#define KERNEL_STACK_SIZE  32768           /* boot stack = TSS.RSP0 stack (paths are 4 KiB) */
#define IST_STACK_SIZE     4096            /* #DF, NMI, #MC */

/* ---- I/O ports ---------------------------------------------------------------- */
/* 16550A UART COM1 (PC16550D datasheet; QEMU hw/char/serial.c). */
#define COM1_BASE          0x3f8
#define UART_RBR           0               /* receive buffer (read) */
#define UART_THR           0               /* transmit holding (write) */
#define UART_LSR           5               /* line status */
#define UART_LSR_DR        0x01            /* data ready */
#define UART_LSR_THRE      0x20            /* transmitter holding register empty */
#define UART_IER           1               /* interrupt enable */
#define UART_IER_RDA       0x01            /* received data available */
#define UART_MCR           4               /* modem control */
/* DTR, RTS, and OUT2, which on a PC gates the UART's interrupt line onto the
 * ISA bus (Linux serial8250 sets the same bits). */
#define UART_MCR_IRQ_ON    0x0b
/* Console input ring (serial.c), a power of two.  When it is full the kernel
 * stops taking bytes (IER = 0) and they wait in the UART and the host. */
#define CONSOLE_RX_SIZE    256

/* 8259A PIC pair, PC/AT wiring (Intel 8259A datasheet; IBM PC/AT technical
 * reference; Linux arch/x86/kernel/i8259.c does the same init). */
#define PIC_MASTER_CMD     0x20
#define PIC_MASTER_DATA    0x21
#define PIC_SLAVE_CMD      0xa0
#define PIC_SLAVE_DATA     0xa1
#define PIC_ICW1           0x11            /* init, edge triggered, cascade, ICW4 follows */
#define PIC_ICW3_MASTER    0x04            /* a slave on IR2 (bit mask) */
#define PIC_ICW3_SLAVE     0x02            /* the slave's id: master IR2 */
#define PIC_ICW4_8086      0x01            /* 8086 mode, normal EOI, fully nested */
#define PIC_OCW2_SPECIFIC_EOI 0x60         /* | IR level */
#define PIC_OCW3_READ_ISR  0x0b            /* the next command-port read returns ISR */
#define PIC_CASCADE_IRQ    2
#define PIC_SPURIOUS_IR    7               /* the IR whose vector a chip gives for a vanished request */
/* IRQ n -> vector IRQ_VECTOR_BASE + n: 0x20-0x27 master, 0x28-0x2f slave,
 * clear of the CPU exceptions 0-31 (SeaBIOS leaves the master at 8). */
#define IRQ_VECTOR_BASE    0x20
#define IRQ_COUNT          16
/* The IDT: exceptions 0-31, IRQs 0x20-0x2f, then 0x30-0x3f for strays (the
 * APIC's spurious vector): 64 gates. */
#define IDT_VECTORS        0x40
#define IRQ_TIMER          0               /* PIT channel 0 */
#define IRQ_COM1           4               /* vmm/layout.py COM1_IRQ */

/* The local APIC (Intel SDM vol. 3, 11.4-11.5; MP spec 1.4, 3.6.2.2 "virtual
 * wire mode").  The kernel does not use it for anything but passing the
 * 8259A's INTR on: LINT0 as ExtINT, LINT1 as NMI, like a PC BIOS leaves it.
 * (QEMU microvm boots with it enabled and LINT0 masked: no PIC interrupt
 * would reach the CPU.) */
#define CPUID_1_EDX_APIC   (1u << 9)
#define MSR_APIC_BASE      0x1b
#define APIC_BASE_ENABLE   0x800           /* bit 11: APIC global enable */
#define APIC_BASE_X2APIC   0x400           /* bit 10: x2APIC mode (registers as MSRs) */
#define APIC_BASE_ADDR_MASK 0xfffff000
#define MSR_X2APIC_BASE    0x800           /* + register offset / 16 */
#define APIC_TPR           0x80
#define APIC_SVR           0xf0
#define APIC_LVT_LINT0     0x350
#define APIC_LVT_LINT1     0x360
#define APIC_SVR_ENABLE    0x100
#define APIC_LVT_EXTINT    0x700           /* delivery mode ExtINT, edge, unmasked */
#define APIC_LVT_NMI       0x400
/* The APIC's spurious-interrupt vector (low 4 bits 1111: older CPUs hardwire
 * them).  Its handler must not EOI. */
#define APIC_SPURIOUS_VECTOR 0x3f

/* Processes (proc/sched.c, proc/fork.c; issue 15a). */
#define KSTACK_PAGES       4               /* a task's kernel stack: 16 KiB, physically contiguous */
#define TASK_MAX           256             /* tasks at once (RLIMIT_NPROC-like): fork gets EAGAIN beyond */
#define PID_MAX            32768           /* /proc/sys/kernel/pid_max's default: pids wrap below it */
#define SCHED_SLICE_TICKS  2               /* round-robin slice: 20 ms at PIT_HZ */
#define FXSAVE_AREA        512             /* fxsave64's image, 16-byte aligned (SDM vol. 1, 10.5) */

/* cpu_idle() before the first timer tick (irq.c): interrupt windows between
 * two direct reads of the UART (each a VM exit; a window costs ~1 us when
 * ring 0 is emulated). */
#define IDLE_POLL_SPINS    64

/* 8254 PIT (Intel 8254 datasheet; PC wiring as in vmm/layout.py). */
#define PIT_CH0            0x40
#define PIT_CH2            0x42
#define PIT_CMD            0x43
#define PIT_INPUT_HZ       1193182         /* 14.31818 MHz / 12 */
/* Timer interrupt rate.  100 Hz: a tick costs 6 emulated ring-0
 * instructions plus the interrupt delivery on this nested KVM (~50-100 us
 * of guest time measured: under 1 %), and one tick is one clock_t of
 * times() (USER_HZ), as on Linux. */
#define PIT_HZ             100
#define PIT_CH0_DIVISOR    ((PIT_INPUT_HZ + PIT_HZ / 2) / PIT_HZ)   /* 11932 */
#define PIT_CW_CH0_RATE    0x34            /* channel 0, lobyte/hibyte, mode 2, binary */
#define PIT_CW_CH0_ONESHOT 0x30            /* channel 0, lobyte/hibyte, mode 0, binary */
#define PIT_CW_CH2_ONESHOT 0xb0            /* channel 2, lobyte/hibyte, mode 0, binary */
#define PIT_READBACK_CH0_STATUS 0xe2       /* read-back: channel 0 status only */
#define PIT_STATUS_OUT     0x80            /* status byte: the OUT pin */
/* Port 0x61 (PC system control port B): channel 2 gate, speaker, channel 2 OUT. */
#define PORT_B             0x61
#define PORT_B_GATE2       0x01
#define PORT_B_SPEAKER     0x02
#define PORT_B_OUT2        0x20
/* TSC calibration against channel 2 (or 0, pit.c) when no CPUID leaf gives
 * the rate: 10 ms per count (ring 0 is emulated here, keep it short). */
#define TSC_CALIBRATE_HZ   100
/* A measurement is kept once its uncertainty (how far apart the TSC reads
 * around the count's start and end are: host preemption of the vCPU widens
 * them) is below 1/TSC_CALIBRATE_TOLERANCE; else the best of a few tries. */
#define TSC_CALIBRATE_TOLERANCE 32
#define TSC_CALIBRATE_TRIES 8
/* Linux's USER_HZ: the unit of times() (sysconf(_SC_CLK_TCK) = 100). */
#define USER_HZ            100
/* QEMU isa-debug-exit (hw/misc/debugexit.c), -device isa-debug-exit,iobase=0xf4:
 * QEMU exits with (value << 1) | 1; our VMM exits with value. */
#define DEBUG_EXIT_PORT    0xf4
/* MC146818 CMOS RTC (the PC's; Motorola datasheet; vmm/devices/rtc.py): index
 * port, data port, the time registers, the century byte (ACPI FADT's default),
 * status registers A (bit 7: update in progress) and B (bit 2: binary, not
 * BCD; bit 1: 24-hour). */
#define RTC_INDEX_PORT     0x70
#define RTC_DATA_PORT      0x71
#define RTC_SECONDS        0x00
#define RTC_MINUTES        0x02
#define RTC_HOURS          0x04
#define RTC_DAY            0x07
#define RTC_MONTH          0x08
#define RTC_YEAR           0x09
#define RTC_CENTURY        0x32
#define RTC_REG_A          0x0a
#define RTC_REG_B          0x0b
#define RTC_A_UIP          0x80
#define RTC_B_BINARY       0x04
#define RTC_B_24H          0x02
/* --strace reports (syscall/strace.c): a port no PC device uses (above the
 * ISA range, clear of the ACPI PM block at 0x600), claimed by our VMM only
 * when it asks for the reports (vmm/layout.py STRACE_PORT). */
#define STRACE_PORT        0x4000

/* ---- Boot protocol: Xen PVH (xen/include/public/elfnote.h and
 * xen/include/public/arch-x86/hvm/start_info.h) -------------------------------- */
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC    0x336ec578
#define E820_RAM           1
#define MAX_MEMMAP         32              /* entries we copy; more are ignored */
#define CMDLINE_MAX        2048            /* bytes of command line we keep */
#define MAX_ARGS           64              /* argv entries passed to the program */
/* Where the first program is looked up, and its PATH: the container
 * launcher's (vmm/container/launcher.py DEFAULT_PATH), so both run alike. */
#define INIT_PATH          "/bin:/usr/bin:/sbin:/usr/sbin"

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

/* ---- virtio over MMIO (virtio 1.2: 4.2.2 registers, 2.1 status, 2.7 split
 * virtqueues, 5.2 block, 5.3 console, 5.4 entropy; names as in Linux's
 * include/uapi/linux/virtio_mmio.h, virtio_ring.h, virtio_blk.h) ----------- */
#define VIRTIO_MMIO_MAGIC_VALUE      0x000
#define VIRTIO_MMIO_VERSION          0x004
#define VIRTIO_MMIO_DEVICE_ID        0x008
#define VIRTIO_MMIO_DEVICE_FEATURES  0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES  0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL        0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM        0x038
#define VIRTIO_MMIO_QUEUE_READY      0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK    0x064
#define VIRTIO_MMIO_STATUS           0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW   0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH  0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW  0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW   0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH  0x0a4
#define VIRTIO_MMIO_CONFIG           0x100
#define VIRTIO_MMIO_MIN_SIZE         0x200   /* registers + some config (QEMU's slots: 512) */
#define VIRTIO_MMIO_MAGIC            0x74726976  /* "virt" */
#define VIRTIO_MMIO_INT_VRING        0x1     /* InterruptStatus: used buffer */
#define VIRTIO_MMIO_INT_CONFIG       0x2     /* InterruptStatus: configuration change */
#define VIRTIO_STATUS_ACKNOWLEDGE    1
#define VIRTIO_STATUS_DRIVER         2
#define VIRTIO_STATUS_DRIVER_OK      4
#define VIRTIO_STATUS_FEATURES_OK    8
#define VIRTIO_STATUS_NEEDS_RESET    64
#define VIRTIO_STATUS_FAILED         128
#define VIRTIO_F_VERSION_1           32      /* feature bit numbers */
#define VIRTIO_ID_BLOCK              2
#define VIRTIO_ID_CONSOLE            3
#define VIRTIO_ID_RNG                4
#define VIRTQ_DESC_F_NEXT            1
#define VIRTQ_DESC_F_WRITE           2
#define VIRTQ_AVAIL_F_NO_INTERRUPT   1
/* The devices the kernel keeps track of (our VMM has 9 slots, QEMU microvm 8),
 * and room for their virtio_mmio.device= values until they are parsed. */
#define VIRTIO_MAX_DEVICES           16
#define VIRTIO_PARAM_BYTES           512
/* One page holds a whole queue and the request scratch (virtio.h): so at
 * most 128 descriptors (2 KiB), however many the device offers. */
#define VIRTQ_MAX_SIZE               128
#define VIRTQ_AVAIL_OFFSET           2048
#define VIRTQ_USED_OFFSET            2560
#define VIRTQ_SCRATCH_OFFSET         3840
#define VIRTIO_BLK_F_SIZE_MAX        1       /* feature bit numbers (5.2.3) */
#define VIRTIO_BLK_F_SEG_MAX         2
#define VIRTIO_BLK_F_RO              5
#define VIRTIO_BLK_F_FLUSH           9
#define VIRTIO_BLK_CFG_CAPACITY      0x00    /* config offsets: le64 */
#define VIRTIO_BLK_CFG_SIZE_MAX      0x08    /* le32 */
#define VIRTIO_BLK_CFG_SEG_MAX       0x0c    /* le32 */
#define VIRTIO_BLK_T_IN              0
#define VIRTIO_BLK_T_OUT             1
#define VIRTIO_BLK_T_FLUSH           4
#define VIRTIO_BLK_T_GET_ID          8
#define VIRTIO_BLK_S_OK              0
#define VIRTIO_BLK_S_UNSUPP          2
#define VIRTIO_BLK_ID_BYTES          20
#define SECTOR_SIZE                  512
/* The most one block request moves (more is split): bounds the time one
 * request holds the host's vCPU thread, and matches our device's size_max. */
#define VIRTIO_BLK_MAX_REQUEST       0x100000
#define VIRTIO_CONSOLE_TRANSMITQ     1       /* port 0's transmitq (5.3.2) */
#define VIRTIO_MAX_DISKS             26      /* /dev/vda .. /dev/vdz */

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
