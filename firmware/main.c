/*
 * The firmware's boot path, in 32-bit flat protected mode (entry.S got us here).
 *
 * QEMU presents a PVH ELF kernel through fw_cfg like this (hw/i386/x86.c x86_load_linux,
 * pc-bios/optionrom/pvh_main.c), and our VMM's vmm/devices/fw_cfg.py does the same:
 *   - the ELF's segments are already in RAM (the VMM loaded them);
 *     FW_CFG_KERNEL_ADDR/SIZE give their extent, FW_CFG_KERNEL_ENTRY the PVH entry
 *     (XEN_ELFNOTE_PHYS32_ENTRY), and FW_CFG_SETUP_DATA the first 8 KiB of the file;
 *   - FW_CFG_CMDLINE_SIZE/DATA hold the command line with its NUL;
 *   - FW_CFG_INITRD_ADDR/SIZE/DATA the initrd and where to put it (top of RAM);
 *   - the file etc/e820 holds the memory map ({le64 addr, le64 len, le32 type} each).
 * We copy the initrd and the command line, build hvm_start_info with module 0 = the
 * initrd and the memory map, and enter the kernel as the VMM's direct PVH boot does.
 */
#include "firmware.h"
#include "fw_cfg.h"
#include "io.h"
#include "layout.h"
#include "pvh.h"

extern const char rom_gdt[], rom_gdt_end[];

struct e820_entry {
    uint64_t addr;
    uint64_t len;
    uint32_t type;
} __attribute__((packed));

struct range {
    uint64_t start, end;
};

/* ---- the kernel, already in RAM --------------------------------------------------- */

#define ELF_HEADER_SIZE 20              /* enough for e_ident, e_type and e_machine */

static void check_elf_header(struct fw_cfg *cfg)
{
    uint8_t h[ELF_HEADER_SIZE];
    memset(h, 0, sizeof h);
    if (fw_cfg_read_u32(cfg, FW_CFG_SETUP_SIZE) >= sizeof h) {
        fw_cfg_select(cfg, FW_CFG_SETUP_DATA);
        fw_cfg_read(cfg, h, sizeof h);
    }
    uint16_t machine = (uint16_t)(h[18] | h[19] << 8);
    int elf64 = h[4] == 2, elf32 = h[4] == 1;
    if (memcmp(h, "\177ELF", 4) != 0 || h[5] != 1 /* little-endian */
        || !((elf64 && machine == 62) || (elf32 && machine == 3)))
        fail(EXIT_NOT_PVH_ELF, "kernel is not an x86 ELF image (PVH boot needs one)");
}

/* ---- the memory map ------------------------------------------------------------- */

/* Add an entry to the hand-over table, kept sorted by address (insertion sort). */
static void memmap_add(struct hvm_memmap_table_entry *map, uint32_t *n,
                       uint64_t addr, uint64_t size, uint32_t type)
{
    if (size == 0)
        return;
    if (*n >= PVH_MEMMAP_MAX_ENTRIES)
        fail(EXIT_NO_MEMORY_MAP, "etc/e820 has too many entries");
    uint32_t i = *n;
    for (; i > 0 && map[i - 1].addr > addr; i--)
        map[i] = map[i - 1];
    map[i].addr = addr;
    map[i].size = size;
    map[i].type = type;
    map[i].reserved = 0;
    (*n)++;
}

/*
 * etc/e820 -> the PVH memory map. QEMU's etc/e820 calls all of low memory RAM (SeaBIOS
 * carves out the legacy area itself), so we carve out [EBDA_START, 1 MiB), where our own
 * shadow lies, as vmm/arch/x86/pvh.e820_map does: for our VMM the result is its map.
 */
static uint32_t build_memmap(struct fw_cfg *cfg, struct hvm_memmap_table_entry *map)
{
    static const uint64_t hole_start = EBDA_START, hole_end = HIGH_MEMORY_START;
    struct e820_entry raw[PVH_MEMMAP_MAX_ENTRIES];
    uint32_t size, n = 0;
    uint16_t key = fw_cfg_find_file(cfg, "etc/e820", &size);
    if (!key || size == 0 || size % sizeof raw[0] || size > sizeof raw)
        fail(EXIT_NO_MEMORY_MAP, "no usable etc/e820 in fw_cfg");
    fw_cfg_select(cfg, key);
    fw_cfg_read(cfg, raw, size);

    for (uint32_t i = 0; i < size / sizeof raw[0]; i++) {
        uint64_t start = raw[i].addr, end = raw[i].addr + raw[i].len;
        if (start >= hole_start && end <= hole_end)
            continue;                                   /* inside the hole: dropped */
        if (raw[i].type != E820_RAM || end <= hole_start || start >= hole_end) {
            memmap_add(map, &n, start, raw[i].len, raw[i].type);
            continue;
        }
        if (start < hole_start)
            memmap_add(map, &n, start, hole_start - start, E820_RAM);
        if (end > hole_end)
            memmap_add(map, &n, hole_end, end - hole_end, E820_RAM);
    }
    memmap_add(map, &n, hole_start, hole_end - hole_start, E820_RESERVED);
    return n;
}

static int in_ram(const struct hvm_memmap_table_entry *map, uint32_t n, struct range r)
{
    for (uint32_t i = 0; i < n; i++)
        if (map[i].type == E820_RAM && map[i].addr <= r.start && r.end <= map[i].addr + map[i].size)
            return 1;
    return 0;
}

/* The end of the highest RAM below 4 GiB: where an initrd goes if fw_cfg gives no address. */
static uint64_t top_of_low_ram(const struct hvm_memmap_table_entry *map, uint32_t n)
{
    uint64_t top = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t end = map[i].addr + map[i].size;
        if (map[i].type == E820_RAM && end <= 0x100000000ull && end > top)
            top = end;
    }
    return top;
}

/*
 * What this firmware writes below 1 MiB (vmm/loader/pvh.py boot_structures names the same
 * ranges): a kernel may lie anywhere else, even in the legacy hole, where a kernel linked at
 * 1 MiB by plain ld keeps its ELF headers (0xff000), as QEMU allows. Returns the name of the
 * first structure `k` overlaps, or 0.
 */
static const char *boot_structure_overlapped(struct range k)
{
    static const struct { uint64_t start, end; const char *name; } structures[] = {
        { BOOT_GDT_ADDR, BOOT_GDT_ADDR + 0x100, "the boot GDT" },
        { FW_STACK_TOP - 0x1000, FW_STACK_TOP, "the firmware's stack" },
        { PVH_INFO_START, PVH_MODLIST_START + 0x20, "hvm_start_info and the module list" },
        { PVH_MEMMAP_START, PVH_MEMMAP_START + PVH_MEMMAP_MAX_ENTRIES * 24, "the PVH memory map" },
        { CMDLINE_START, CMDLINE_START + CMDLINE_MAX_SIZE, "the kernel command line" },
    };
    for (unsigned i = 0; i < sizeof structures / sizeof structures[0]; i++)
        if (k.start < structures[i].end && structures[i].start < k.end)
            return structures[i].name;
    return 0;
}

/* ---- command line and initrd ---------------------------------------------------------- */

static void load_cmdline(struct fw_cfg *cfg)
{
    char *cmdline = phys(CMDLINE_START);
    uint32_t size = fw_cfg_read_u32(cfg, FW_CFG_CMDLINE_SIZE);
    if (size > CMDLINE_MAX_SIZE)
        fail(EXIT_CMDLINE_TOO_LONG, "the kernel command line is longer than 64 KiB");
    if (size) {
        fw_cfg_select(cfg, FW_CFG_CMDLINE_DATA);
        fw_cfg_read(cfg, cmdline, size);
    }
    cmdline[size ? size - 1 : 0] = 0;
}

/* Returns the number of modules (0 or 1) and fills `module`. */
static uint32_t load_initrd(struct fw_cfg *cfg, const struct hvm_memmap_table_entry *map,
                            uint32_t n, struct range kernel, struct hvm_modlist_entry *module)
{
    uint32_t size = fw_cfg_read_u32(cfg, FW_CFG_INITRD_SIZE);
    if (size == 0)
        return 0;
    uint64_t addr = fw_cfg_read_u32(cfg, FW_CFG_INITRD_ADDR);
    if (addr == 0)                  /* QEMU always says; otherwise top of RAM, as QEMU would */
        addr = (top_of_low_ram(map, n) - size) & ~0xFFFull;
    struct range r = { addr, addr + size };
    if (addr < HIGH_MEMORY_START || !in_ram(map, n, r) || (r.start < kernel.end && kernel.start < r.end))
        fail(EXIT_INITRD_NO_ROOM, "the initrd does not fit in RAM above the kernel");
    fw_cfg_select(cfg, FW_CFG_INITRD_DATA);
    fw_cfg_read(cfg, phys((uint32_t)addr), size);
    module->paddr = addr;
    module->size = size;
    module->cmdline_paddr = 0;
    module->reserved = 0;
    return 1;
}

/* ---- the boot path ---------------------------------------------------------------- */

void firmware_main(void) __attribute__((noreturn));
void firmware_main(void)
{
    struct fw_cfg cfg;
    serial_puts("pyvmm firmware\n");
    if (!fw_cfg_init(&cfg))
        fail(EXIT_NO_FW_CFG, "no fw_cfg device (no \"QEMU\" signature at port 0x510)");

    struct range kernel;
    kernel.start = fw_cfg_read_u32(&cfg, FW_CFG_KERNEL_ADDR);
    kernel.end = kernel.start + fw_cfg_read_u32(&cfg, FW_CFG_KERNEL_SIZE);
    if (kernel.end == kernel.start)
        fail(EXIT_NO_KERNEL, "no kernel in fw_cfg (FW_CFG_KERNEL_SIZE is 0)");
    check_elf_header(&cfg);
    uint32_t entry = fw_cfg_read_u32(&cfg, FW_CFG_KERNEL_ENTRY);
    if (entry == 0)
        fail(EXIT_NO_PVH_ENTRY, "kernel has no PVH entry (XEN_ELFNOTE_PHYS32_ENTRY)");

    struct hvm_memmap_table_entry *map = phys(PVH_MEMMAP_START);
    uint32_t entries = build_memmap(&cfg, map);
    if (kernel.end > top_of_low_ram(map, entries))
        fail(EXIT_KERNEL_NOT_IN_RAM, "the kernel's segments lie outside RAM");
    const char *overlapped = boot_structure_overlapped(kernel);
    if (overlapped) {
        serial_puts("firmware: the kernel overlaps ");
        serial_puts(overlapped);
        serial_puts("\n");
        fail(EXIT_KERNEL_NOT_IN_RAM, "the kernel overlaps a boot structure below 1 MiB");
    }

    load_cmdline(&cfg);
    struct hvm_modlist_entry *modlist = phys(PVH_MODLIST_START);
    uint32_t modules = load_initrd(&cfg, map, entries, kernel, modlist);

    struct hvm_start_info *info = phys(PVH_INFO_START);
    info->magic = HVM_START_MAGIC;
    info->version = HVM_START_INFO_VERSION;
    info->flags = 0;
    info->nr_modules = modules;
    info->modlist_paddr = modules ? PVH_MODLIST_START : 0;
    info->cmdline_paddr = CMDLINE_START;
    info->rsdp_paddr = 0;
    info->memmap_paddr = PVH_MEMMAP_START;
    info->memmap_entries = entries;
    info->reserved = 0;

    memcpy(phys(BOOT_GDT_ADDR), rom_gdt, (size_t)(rom_gdt_end - rom_gdt));
    pvh_enter(entry, PVH_INFO_START);
}
