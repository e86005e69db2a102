"""The ACPI tables of one VM (ACPI 6.5, chapter 5): RSDP, XSDT, FADT, MADT and a DSDT in AML.

The platform is "hardware-reduced" ACPI (5.2.9, FADT flag HW_REDUCED_ACPI), as QEMU microvm,
Firecracker and cloud-hypervisor present it: no PM1 blocks, no SCI, no FACS; power-off and
reset go through the FADT's sleep control and reset registers (the AcpiPm device). Linux then
leaves the 8259A and the 8254 alone and runs on the local APIC timer, the IOAPIC and the TSC.

The DSDT describes COM1, the CMOS RTC and every virtio-mmio device as LNRO0005 (the _HID
Linux's virtio_mmio driver matches) with its register window and interrupt: that is how
Debian's kernels, which have no virtio_mmio.device= support built in, find our devices.
"""
import struct
from ....records import field, record

from . import aml

OEM_ID = b"PYVMM "                     # 6 bytes
OEM_TABLE_ID = b"PYVMMVM "             # 8 bytes
OEM_REVISION = 1
CREATOR_ID = b"PYVM"
CREATOR_REVISION = 1
HEADER = struct.Struct("<4sIBB6s8sI4sI")   # the 36-byte System Description Table Header (5.2.6)

RSDP_SIGNATURE = b"RSD PTR "
RSDP_REVISION = 2                      # ACPI 2.0+: has the XSDT address
RSDP = struct.Struct("<8sB6sBIIQB3s")  # 36 bytes
RSDP_V1_LENGTH = 20

FADT_REVISION = 6                      # ACPI 6.x FADT, 276 bytes
FADT_MINOR_REVISION = 5
FADT_LENGTH = 276
FADT_FLAG_RESET_REG_SUP = 1 << 10
FADT_FLAG_HW_REDUCED_ACPI = 1 << 20
IAPC_BOOT_ARCH_VGA_NOT_PRESENT = 1 << 2
IAPC_BOOT_ARCH_MSI_NOT_SUPPORTED = 1 << 3
IAPC_BOOT_ARCH_ASPM_NOT_SUPPORTED = 1 << 4
GAS = struct.Struct("<BBBBQ")          # Generic Address Structure: space, bit width, bit offset, access size, address
GAS_SYSTEM_IO = 1
GAS_ACCESS_BYTE = 1

MADT_REVISION = 5
MADT_FLAG_PCAT_COMPAT = 1              # a dual 8259 is present (it is: the tiny kernel uses it)
MADT_LOCAL_APIC, MADT_IO_APIC, MADT_INTERRUPT_OVERRIDE, MADT_LOCAL_APIC_NMI = 0, 1, 2, 4
LOCAL_APIC_ENABLED = 1
LINT1 = 1
ALL_PROCESSORS = 0xFF

DSDT_REVISION = 2                      # 64-bit integers in AML
SLEEP_TYPE_S5 = 5                      # the SLP_TYP value _S5 names; AcpiPm powers off on it


@record
class VirtioMmioSlot:
    base: int
    size: int
    gsi: int


@record
class AcpiConfig:
    """What the tables describe; addresses and ports come from vmm/layout.py via the machine."""
    base: int                          # where the tables are placed (the RSDP first)
    cpus: int = 1
    lapic_base: int = 0
    ioapic_base: int = 0
    ioapic_id: int = 0
    serial_port: int = 0
    serial_irq: int = 0
    rtc_port: int = 0
    rtc_irq: int = 0
    sleep_control_port: int = 0
    sleep_status_port: int = 0
    reset_port: int = 0
    reset_value: int = 0
    virtio: list = field(default_factory=list)   # [VirtioMmioSlot]


def checksum(data: bytes) -> int:
    """The byte that makes the sum of all bytes 0 mod 256."""
    return -sum(data) & 0xFF


def with_checksum(table: bytes, at: int = 9) -> bytes:
    table = bytearray(table)
    table[at] = 0
    table[at] = checksum(table)
    return bytes(table)


def sdt(signature: bytes, revision: int, body: bytes) -> bytes:
    """A System Description Table: the standard header, then `body`, checksummed."""
    header = HEADER.pack(signature, HEADER.size + len(body), revision, 0, OEM_ID, OEM_TABLE_ID,
                         OEM_REVISION, CREATOR_ID, CREATOR_REVISION)
    return with_checksum(header + body)


def rsdp(xsdt_address: int) -> bytes:
    """The Root System Description Pointer (5.2.5.3): the v1 checksum covers its first 20
    bytes, the extended checksum all 36."""
    table = bytearray(RSDP.pack(RSDP_SIGNATURE, 0, OEM_ID, RSDP_REVISION, 0, RSDP.size, xsdt_address, 0, bytes(3)))
    table[8] = checksum(table[:RSDP_V1_LENGTH])
    table[32] = checksum(table)
    return bytes(table)


def xsdt(addresses) -> bytes:
    return sdt(b"XSDT", 1, b"".join(struct.pack("<Q", a) for a in addresses))


def gas_io(port: int) -> bytes:
    return GAS.pack(GAS_SYSTEM_IO, 8, 0, GAS_ACCESS_BYTE, port)


def fadt(config: AcpiConfig, dsdt_address: int) -> bytes:
    """A hardware-reduced FADT (5.2.9): only the DSDT's address, the flags, the boot
    architecture flags, the reset register and the sleep control and status registers."""
    body = bytearray(FADT_LENGTH - HEADER.size)

    def put(offset, fmt, *values):           # offsets as in table 5.9, from the table's start
        struct.pack_into(fmt, body, offset - HEADER.size, *values)

    put(40, "<I", dsdt_address)              # DSDT (32-bit)
    put(109, "<H", IAPC_BOOT_ARCH_VGA_NOT_PRESENT | IAPC_BOOT_ARCH_MSI_NOT_SUPPORTED
        | IAPC_BOOT_ARCH_ASPM_NOT_SUPPORTED)
    put(112, "<I", FADT_FLAG_HW_REDUCED_ACPI | FADT_FLAG_RESET_REG_SUP)
    body[116 - HEADER.size:128 - HEADER.size] = gas_io(config.reset_port)
    put(128, "<B", config.reset_value)
    put(131, "<B", FADT_MINOR_REVISION)
    put(140, "<Q", dsdt_address)             # X_DSDT
    body[244 - HEADER.size:256 - HEADER.size] = gas_io(config.sleep_control_port)
    body[256 - HEADER.size:268 - HEADER.size] = gas_io(config.sleep_status_port)
    body[268 - HEADER.size:276 - HEADER.size] = b"PYVMMPYV"   # hypervisor vendor identity
    return sdt(b"FACP", FADT_REVISION, bytes(body))


def madt(config: AcpiConfig) -> bytes:
    """The MADT (5.2.12): a local APIC per vCPU (ID = processor UID = index), the IOAPIC with
    GSI base 0 (its pins 0-15 are the ISA IRQs), and LINT1 as NMI on every processor, as on a PC."""
    body = struct.pack("<II", config.lapic_base, MADT_FLAG_PCAT_COMPAT)
    for cpu in range(config.cpus):
        body += struct.pack("<BBBBI", MADT_LOCAL_APIC, 8, cpu, cpu, LOCAL_APIC_ENABLED)
    body += struct.pack("<BBBBII", MADT_IO_APIC, 12, config.ioapic_id, 0, config.ioapic_base, 0)
    body += struct.pack("<BBBHB", MADT_LOCAL_APIC_NMI, 6, ALL_PROCESSORS, 0, LINT1)
    return sdt(b"APIC", MADT_REVISION, body)


def dsdt(config: AcpiConfig) -> bytes:
    devices = [
        aml.device("COM1", aml.name("_HID", aml.eisa_id("PNP0501")), aml.name("_UID", aml.integer(0)),
                   aml.name("_CRS", aml.resource_template(aml.io_port(config.serial_port, 8),
                                                          aml.irq_no_flags(config.serial_irq)))),
        aml.device("RTC", aml.name("_HID", aml.eisa_id("PNP0B00")),
                   aml.name("_CRS", aml.resource_template(aml.io_port(config.rtc_port, 2),
                                                          aml.irq_no_flags(config.rtc_irq)))),
    ]
    for index, slot in enumerate(config.virtio):
        # Level-triggered: a virtio-mmio device holds its line until the driver acknowledges
        # InterruptStatus (QEMU microvm describes its slots the same way).
        devices.append(aml.device(
            f"VR{index:02X}", aml.name("_HID", aml.string("LNRO0005")), aml.name("_UID", aml.integer(index)),
            aml.name("_CCA", aml.integer(1)),
            aml.name("_CRS", aml.resource_template(aml.memory32_fixed(slot.base, slot.size),
                                                   aml.interrupt(slot.gsi, level=True)))))
    body = aml.scope("\\_SB", *devices)
    body += aml.name("\\_S5", aml.package(aml.integer(SLEEP_TYPE_S5), aml.integer(0)))
    return sdt(b"DSDT", DSDT_REVISION, body)


def build(config: AcpiConfig):
    """(bytes to write at config.base, RSDP address): the RSDP first, 16-byte aligned as the
    BIOS-area scan requires, then DSDT, FADT, MADT and XSDT, each 16-byte aligned."""
    blob = bytearray(rsdp(0))
    addresses = {}

    def place(key, table):
        blob.extend(bytes(-len(blob) % 16))
        addresses[key] = config.base + len(blob)
        blob.extend(table)

    place("DSDT", dsdt(config))
    place("FACP", fadt(config, addresses["DSDT"]))
    place("APIC", madt(config))
    place("XSDT", xsdt([addresses["FACP"], addresses["APIC"]]))
    blob[:RSDP.size] = rsdp(addresses["XSDT"])
    return bytes(blob), config.base
