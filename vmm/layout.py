"""The guest-physical memory map and I/O port numbers: every magic address lives here.

Nothing else in the VMM invents a guest address or a port number; it imports it from this
module. Each constant says where the value comes from.
"""

KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30
PAGE_SIZE = 4 * KiB

# --- Guest RAM ---------------------------------------------------------------------------
# RAM is one region starting at guest-physical 0.
RAM_START = 0x0
# The default and the bounds of --mem. The top bound keeps all of RAM below the 32-bit
# MMIO hole (where virtio-mmio devices and the KVM TSS live), so one region suffices.
DEFAULT_MEM_SIZE = 64 * MiB
MIN_MEM_SIZE = 2 * MiB
MMIO_HOLE_START = 0xC000_0000          # 3 GiB: the PC's "PCI hole" starts here at the latest.
MAX_MEM_SIZE = MMIO_HOLE_START

# The legacy hole (VGA, option ROMs, BIOS) between 640 KiB and 1 MiB is reserved in the
# E820 map, as on a PC (Linux boot protocol, Documentation/arch/x86/boot.rst; Firecracker
# arch/x86_64/layout.rs uses the same split).
EBDA_START = 0x9_FC00                  # end of usable low memory (639 KiB)
HIGH_MEMORY_START = 1 * MiB

# --- PVH boot structures (low memory, below the kernel) ----------------------------------
# Placed like Firecracker's arch/x86_64/layout.rs: start_info at 0x6000, its module list
# right after it, the memory map at 0x7000. The command line sits at 0x20000.
BOOT_GDT_ADDR = 0x500                  # the GDT the PVH entry state's selectors refer to
PVH_INFO_START = 0x6000                # struct hvm_start_info
PVH_MODLIST_START = 0x6040             # struct hvm_modlist_entry[]
PVH_MEMMAP_START = 0x7000              # struct hvm_memmap_table_entry[]
PVH_MEMMAP_MAX_ENTRIES = 128
CMDLINE_START = 0x2_0000
CMDLINE_MAX_SIZE = 0x1_0000            # 64 KiB including the terminating NUL

# Modules (the guest program) are placed at the top of RAM, page-aligned, as QEMU does with
# its initrd (hw/i386/x86.c: initrd_addr = (initrd_max - initrd_size) & ~(page - 1)).

# --- Linux boot protocol (bzImage) and Multiboot structures ---------------------------------
# One boot protocol is used per VM, so each protocol's own structures sit in the same low pages
# PVH uses for its own. Firecracker's arch/x86_64/layout.rs places the zero page at 0x7000 and
# the identity-mapping page tables at 0x9000-0xbfff; we keep its PML4 and PDPT addresses and give
# the page directories four pages (2 MiB pages up to 4 GiB, so all of RAM and the MMIO hole).
ZERO_PAGE_START = 0x8000               # struct boot_params (Documentation/arch/x86/zero-page.rst)
PML4_START = 0x9000
PDPT_START = 0xA000
PD_START = 0xB000                      # four page directories: 0xB000-0xEFFF
PD_COUNT = 4
MULTIBOOT_INFO_START = 0x6000          # struct multiboot_info, then module list and memory map
MULTIBOOT_INFO_SIZE = 0x1000
# The real-mode alias of the reset vector (F000:FFF0). Linux on a hardware-reduced ACPI platform
# restarts through EFI, and without EFI falls back to jumping there in real mode, where a PC's
# BIOS would reset the machine (arch/x86/kernel/reboot.c: BOOT_EFI, then BOOT_BIOS). A direct
# Linux boot has no BIOS, so a few bytes there pulse the i8042's reset line instead.
REAL_MODE_RESET_VECTOR = 0xF_FFF0
# A bzImage's protected-mode kernel is loaded at 1 MiB unless it is relocatable and prefers
# another address (boot.rst: "code32_start", "pref_address"). The initrd goes as high as
# RAM and the kernel's initrd_addr_max allow, as QEMU and Firecracker place it.
BZIMAGE_LOAD_ADDR = HIGH_MEMORY_START

# What the VMM itself writes below 1 MiB, by name: a kernel segment that overlaps one of these
# is refused, naming it; anything else in low memory (an ELF header page at 0xff000) is allowed.
FIRMWARE_STACK = (0x5000, 0x6000)     # firmware/layout.h FW_STACK_TOP, one page below it

# --- ACPI tables (generated per VM, vmm/arch/x86/acpi) --------------------------------------
# The OS finds the RSDP by scanning the BIOS read-only area 0xE0000-0xFFFFF on 16-byte boundaries
# (ACPI 6.5, 5.2.5.1); we put it at the start of that area, the other tables after it, all
# inside the E820 hole, and also hand its address over in boot_params.acpi_rsdp_addr and
# hvm_start_info.rsdp_paddr. The 0xF0000 half is the firmware's BIOS shadow, so the tables
# stay below it.
ACPI_TABLES_START = 0xE_0000
ACPI_TABLES_SIZE = 0x1_0000

# --- KVM-specific addresses outside RAM ----------------------------------------------------
# Intel VMX needs three pages for a real-mode TSS and one for an identity-map page table
# somewhere in guest-physical space that the guest does not use (KVM_SET_TSS_ADDR,
# KVM_SET_IDENTITY_MAP_ADDR). QEMU uses 0xfffbd000 and 0xfffbc000, just below the BIOS.
KVM_TSS_ADDR = 0xFFFB_D000
KVM_IDENTITY_MAP_ADDR = 0xFFFB_C000

# --- I/O ports -----------------------------------------------------------------------------
COM1_PORT = 0x3F8                      # PC standard COM1 (16550A), 8 registers
COM1_PORT_COUNT = 8
COM1_IRQ = 4
DEBUG_EXIT_PORT = 0xF4                 # QEMU isa-debug-exit's conventional iobase
DEBUG_EXIT_PORT_COUNT = 4              # 32-bit register (QEMU: iosize=4)
# --strace: the tiny kernel writes the physical address of each report record here; only
# claimed when --strace asks for the reports. Above the ISA range (0-0x3ff) and clear of the
# ACPI PM block (0x600) and fw_cfg (0x510): no PC device answers there, and this VMM has no
# PCI I/O BARs. guest/kernel/layout.h has the same number.
STRACE_PORT = 0x4000
STRACE_PORT_COUNT = 4

# The classic PC interrupt platform (IBM PC/AT; Intel 8259A and 8254 datasheets).
PIC_MASTER_PORT = 0x20                 # command (0x20) and data (0x21)
PIC_SLAVE_PORT = 0xA0                  # command (0xA0) and data (0xA1)
PIC_PORT_COUNT = 2
PIC_CASCADE_IRQ = 2                    # the slave PIC's output drives master input 2
PIT_PORT = 0x40                        # channels 0-2 at 0x40-0x42, mode/command at 0x43
PIT_PORT_COUNT = 4
PIT_IRQ = 0
PIT_INPUT_HZ = 1_193_182               # the PC's 14.31818 MHz crystal divided by 12
SYSTEM_CONTROL_PORT_B = 0x61           # PIT channel 2 gate (bit 0), speaker (bit 1), ch2 output (bit 5)

# The rest of the PC a Linux kernel looks for (IBM PC/AT; Intel SDM vol. 3A ch. 11; 82093AA).
RTC_PORT = 0x70                        # MC146818 CMOS RTC: index (0x70, bit 7 = NMI mask), data (0x71)
RTC_PORT_COUNT = 2
RTC_IRQ = 8
I8042_DATA_PORT = 0x60                 # keyboard controller data
I8042_COMMAND_PORT = 0x64              # status (read) / command (write); 0xFE pulses the reset line
LAPIC_BASE = 0xFEE0_0000               # the local APIC's default base (IA32_APIC_BASE at reset)
LAPIC_SIZE = 0x1000
IOAPIC_BASE = 0xFEC0_0000              # the first I/O APIC's conventional base
IOAPIC_SIZE = 0x1000
IOAPIC_PINS = 24                       # pins 0-15 are the ISA IRQs (identity-mapped GSIs)
# ACPI hardware-reduced power management (ACPI 6.5, 4.8.3.7 and 5.2.9): the FADT's sleep
# control and status registers, and its reset register, in I/O space where cloud-hypervisor
# puts them. Writing SLP_EN|SLP_TYP(S5) powers off; writing ACPI_RESET_VALUE resets.
ACPI_SLEEP_CONTROL_PORT = 0x600
ACPI_SLEEP_STATUS_PORT = 0x601
ACPI_PM_PORT_COUNT = 2
ACPI_RESET_VALUE = 0x01

# virtio-mmio devices: fixed 4 KiB slots in the MMIO hole, each with its own ISA IRQ. The
# IRQs are those a PC leaves free (not 0-2 timer/keyboard/cascade, 4 COM1, 8 RTC, 13 FPU).
# The kernel is told with Linux's syntax: virtio_mmio.device=4K@0xd0000000:5
VIRTIO_MMIO_BASE = 0xD000_0000
VIRTIO_MMIO_SLOT_SIZE = 0x1000
VIRTIO_MMIO_IRQS = (5, 6, 7, 9, 10, 11, 12, 14, 15)

# QEMU's fw_cfg interface on x86 (QEMU docs/specs/fw_cfg.rst): a 16-bit selector register,
# an 8-bit data register, and the DMA address register (big-endian, 64-bit) at 0x514.
FW_CFG_SELECTOR_PORT = 0x510
FW_CFG_DATA_PORT = 0x511
FW_CFG_DMA_PORT = 0x514
FW_CFG_DMA_PORT_COUNT = 8

# Firmware (--firmware/--bios): mapped so that it ends at 4 GiB, where the reset vector
# (physical 0xFFFFFFF0) lies, and its last 64 KiB shadowed at 0xF0000-0xFFFFF like a PC's BIOS.
# 256 KiB at most, so that it stays clear of KVM_TSS_ADDR (QEMU makes the same assumption).
FIRMWARE_TOP = 1 << 32
FIRMWARE_MAX_SIZE = 256 * KiB
FIRMWARE_SIZE_UNIT = 64 * KiB          # QEMU requires a -bios image to be a multiple of this
BIOS_SHADOW_START = 0xF_0000
BIOS_SHADOW_SIZE = 64 * KiB
RESET_VECTOR_CS = 0xF000               # the architectural reset state (SDM 3A 9.1.4)
RESET_VECTOR_CS_BASE = 0xFFFF_0000
RESET_VECTOR_IP = 0xFFF0

# --- CPUID identity -----------------------------------------------------------------------
# What every engine presents to the guest (arch/x86/cpuid.py builds the table).
CPUID_VENDOR = b"GenuineIntel"
HYPERVISOR_SIGNATURE = b"PyVMMPyVMMPy"   # leaf 0x40000000 EBX:ECX:EDX, 12 bytes
