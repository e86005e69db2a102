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

# --- CPUID identity -----------------------------------------------------------------------
# What every engine presents to the guest (arch/x86/cpuid.py builds the table).
CPUID_VENDOR = b"GenuineIntel"
HYPERVISOR_SIGNATURE = b"PyVMMPyVMMPy"   # leaf 0x40000000 EBX:ECX:EDX, 12 bytes
