/*
 * /proc, in Linux's formats, made when read:
 *
 *   /proc/PID/..., /proc/self, /proc/thread-self     procpid.c
 *   /proc/cpuinfo            from CPUID: identity, clock, flags
 *   /proc/meminfo            the page allocator's totals
 *   /proc/uptime, /proc/mounts
 *   /proc/sys/kernel/pid_max, tainted
 *
 * The entries are made when /proc is first used; the PID directories come
 * and go with the processes (procpid.c).
 */
#include "clock.h"
#include "fs/genfile.h"
#include "fs/vfs.h"
#include "kernel.h"
#include "mm/mm.h"
#include "proc/task.h"
#include "x86.h"

#define CPUID_BRAND_FIRST 0x80000002
#define CPUID_BRAND_LAST  0x80000004
#define CPUID_ADDRESS_SIZES 0x80000008

/* ---- system files ---------------------------------------------------------------------- */

static const char *const edx1[32] = {
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", 0, "sep", "mtrr", "pge",
    "mca", "cmov", "pat", "pse36", "pn", "clflush", 0, "dts", "acpi", "mmx", "fxsr", "sse", "sse2",
    "ss", "ht", "tm", "ia64", "pbe",
};
static const char *const ecx1[32] = {
    "pni", "pclmulqdq", "dtes64", "monitor", "ds_cpl", "vmx", "smx", "est", "tm2", "ssse3", "cid",
    "sdbg", "fma", "cx16", "xtpr", "pdcm", 0, "pcid", "dca", "sse4_1", "sse4_2", "x2apic", "movbe",
    "popcnt", "tsc_deadline_timer", "aes", "xsave", 0, "avx", "f16c", "rdrand", "hypervisor",
};
static const char *const edx81[32] = {
    [11] = "syscall", [19] = "mp", [20] = "nx", [22] = "mmxext", [25] = "fxsr_opt",
    [26] = "pdpe1gb", [27] = "rdtscp", [29] = "lm", [30] = "3dnowext", [31] = "3dnow",
};
static const char *const ecx81[32] = {
    "lahf_lm", "cmp_legacy", "svm", "extapic", "cr8_legacy", "abm", "sse4a", "misalignsse",
    "3dnowprefetch", "osvw", "ibs", "xop", "skinit", "wdt", 0, "lwp", "fma4", "tce", 0, "nodeid_msr",
    0, "tbm", "topoext", "perfctr_core", "perfctr_nb",
};
static const char *const ebx7[32] = {
    "fsgsbase", "tsc_adjust", "sgx", "bmi1", "hle", "avx2", 0, "smep", "bmi2", "erms", "invpcid",
    "rtm", "cqm", 0, "mpx", "rdt_a", "avx512f", "avx512dq", "rdseed", "adx", "smap", "avx512ifma",
    0, "clflushopt", "clwb", "intel_pt", "avx512pf", "avx512er", "avx512cd", "sha_ni", "avx512bw",
    "avx512vl",
};

static void flag_names(struct genbuf *b, uint32_t bits, const char *const names[32])
{
    for (int i = 0; i < 32; i++) {
        if ((bits >> i) & 1 && names[i]) {
            gen_puts(b, " ");
            gen_puts(b, names[i]);
        }
    }
}

static void field(struct genbuf *b, const char *name)
{
    gen_puts(b, name);
    gen_pad(b, 16);
    gen_puts(b, ": ");
}

static long gen_cpuinfo(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    uint32_t a, bx, c, d, max, max_ext, vendor[4] = { 0 };
    cpuid(0, &max, &vendor[0], &vendor[2], &vendor[1]);
    cpuid(1, &a, &bx, &c, &d);
    uint32_t family = (a >> 8) & 0xf, model = (a >> 4) & 0xf;
    if (family == 0xf)
        family += (a >> 20) & 0xff;
    if (family >= 6)
        model |= ((a >> 16) & 0xf) << 4;
    cpuid(0x80000000, &max_ext, &bx, &c, &d);
    field(b, "processor");       gen_puts(b, "0\n");
    field(b, "vendor_id");       gen_puts(b, (const char *)vendor);
    gen_puts(b, "\n");
    field(b, "cpu family");      gen_dec(b, family, 0);
    gen_puts(b, "\n");
    field(b, "model");           gen_dec(b, model, 0);
    gen_puts(b, "\n");
    field(b, "model name");
    if (max_ext >= CPUID_BRAND_LAST) {
        uint32_t brand[13] = { 0 };
        for (uint32_t leaf = CPUID_BRAND_FIRST; leaf <= CPUID_BRAND_LAST; leaf++) {
            uint32_t *w = &brand[(leaf - CPUID_BRAND_FIRST) * 4];
            cpuid(leaf, &w[0], &w[1], &w[2], &w[3]);
        }
        const char *s = (const char *)brand;
        while (*s == ' ')
            s++;
        gen_puts(b, s);
    }
    gen_puts(b, "\n");
    field(b, "stepping");        gen_dec(b, a & 0xf, 0);
    gen_puts(b, "\n");
    uint64_t khz = clock_tsc_khz();
    field(b, "cpu MHz");         gen_dec(b, khz / 1000, 0);
    gen_puts(b, ".");
    gen_dec(b, khz % 1000 / 100, 0);
    gen_dec(b, khz % 100 / 10, 0);
    gen_dec(b, khz % 10, 0);
    gen_puts(b, "\n");
    field(b, "physical id");     gen_puts(b, "0\n");
    field(b, "siblings");        gen_puts(b, "1\n");
    field(b, "core id");         gen_puts(b, "0\n");
    field(b, "cpu cores");       gen_puts(b, "1\n");
    field(b, "fpu");             gen_puts(b, "yes\n");
    field(b, "cpuid level");     gen_dec(b, max, 0);
    gen_puts(b, "\n");
    field(b, "wp");              gen_puts(b, "yes\n");
    field(b, "flags");
    cpuid(1, &a, &bx, &c, &d);
    flag_names(b, d, edx1);
    flag_names(b, c, ecx1);
    if (max_ext >= 0x80000001) {
        cpuid(0x80000001, &a, &bx, &c, &d);
        flag_names(b, d, edx81);
        flag_names(b, c, ecx81);
    }
    if (max >= 7) {
        cpuid(7, &a, &bx, &c, &d);
        flag_names(b, bx, ebx7);
    }
    gen_puts(b, "\n");
    if (max_ext >= CPUID_ADDRESS_SIZES) {
        cpuid(CPUID_ADDRESS_SIZES, &a, &bx, &c, &d);
        field(b, "address sizes");
        gen_dec(b, a & 0xff, 0);
        gen_puts(b, " bits physical, ");
        gen_dec(b, (a >> 8) & 0xff, 0);
        gen_puts(b, " bits virtual\n");
    }
    gen_puts(b, "\n");
    return 0;
}

static void mem_line(struct genbuf *b, const char *name, uint64_t kib)
{
    gen_puts(b, name);
    gen_pad(b, 16);
    gen_dec(b, kib, 8);
    gen_puts(b, " kB\n");
}

static long gen_meminfo(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    uint64_t total = pages_total() * (PAGE_SIZE / 1024), free = pages_free() * (PAGE_SIZE / 1024);
    mem_line(b, "MemTotal:", total);
    mem_line(b, "MemFree:", free);
    mem_line(b, "MemAvailable:", free);
    mem_line(b, "Buffers:", 0);
    mem_line(b, "Cached:", 0);
    mem_line(b, "SwapCached:", 0);
    mem_line(b, "SwapTotal:", 0);
    mem_line(b, "SwapFree:", 0);
    return 0;
}

static long gen_uptime(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    uint64_t sec, nsec;
    clock_now(&sec, &nsec);
    gen_dec(b, sec, 0);
    gen_puts(b, ".");
    gen_dec(b, nsec / 10000000 / 10, 0);
    gen_dec(b, nsec / 10000000 % 10, 0);
    gen_puts(b, " 0.00\n");
    return 0;
}

static long gen_mounts(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    gen_puts(b, "rootfs / rootfs rw 0 0\nproc /proc proc rw,nosuid,nodev,noexec 0 0\n"
                "sysfs /sys sysfs rw,nosuid,nodev,noexec 0 0\n");
    return 0;
}

/* /proc/sys/kernel: the values this kernel has (LTP's library reads them). */
static long gen_pid_max(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    gen_dec(b, PID_MAX, 0);
    gen_puts(b, "\n");
    return 0;
}

static long gen_tainted(struct inode *ino, struct genbuf *b)
{
    (void)ino;
    gen_puts(b, "0\n");                 /* nothing taints this kernel: no modules, no oops */
    return 0;
}

static void proc_fill(struct inode *proc)
{
    procpid_fill(proc);
    gen_file(proc, "cpuinfo", 0444, gen_cpuinfo);
    gen_file(proc, "meminfo", 0444, gen_meminfo);
    gen_file(proc, "uptime", 0444, gen_uptime);
    gen_file(proc, "mounts", 0444, gen_mounts);
    struct inode *sys = vfs_mkdir_kernel(proc, "sys", 0555);
    struct inode *kernel = sys ? vfs_mkdir_kernel(sys, "kernel", 0555) : 0;
    if (kernel) {
        gen_file(kernel, "pid_max", 0444, gen_pid_max);
        gen_file(kernel, "tainted", 0444, gen_tainted);
    }
}

static const struct inode_ops proc_dir_ops = { .fill = proc_fill, .refresh = procpid_refresh };

void procfs_init(void)
{
    struct inode *proc = vfs_mkdir_kernel(root_inode, "proc", 0555);
    if (!proc)
        panic("/proc is not a directory");
    proc->ops = &proc_dir_ops;          /* the entries on first use */
}
