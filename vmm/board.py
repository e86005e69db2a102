"""The PC board around the CPU, the same for both engines: the port devices a stock kernel probes
(CMOS RTC, i8042, the ACPI power-management registers) and the ACPI tables that describe the
machine. The interrupt controllers and timers are the engine's own (in the kernel on KVM,
the software engine's platform on unicorn); devices and tables only name their GSIs.
"""
from . import layout
from .arch.x86.acpi import tables as acpi
from .devices.acpi_pm import AcpiPm
from .devices.i8042 import I8042
from .devices.rtc import CmosRtc


def add_pc_devices(ports, control) -> dict:
    """Put the board's devices on the port bus; returns those with state, by name (snapshots)."""
    rtc = CmosRtc()
    ports.register(layout.RTC_PORT, layout.RTC_PORT_COUNT, rtc)
    i8042 = I8042(control)
    ports.register(layout.I8042_DATA_PORT, 1, i8042)
    ports.register(layout.I8042_COMMAND_PORT, 1, _Offset(i8042, layout.I8042_COMMAND_PORT - layout.I8042_DATA_PORT))
    ports.register(layout.ACPI_SLEEP_CONTROL_PORT, layout.ACPI_PM_PORT_COUNT,
                   AcpiPm(control, s5_sleep_type=acpi.SLEEP_TYPE_S5, reset_value=layout.ACPI_RESET_VALUE))
    return {"rtc": rtc, "i8042": i8042}


def acpi_tables(virtio_slots):
    """(the tables as one blob for layout.ACPI_TABLES_START, the RSDP's address) for a VM
    with the virtio-mmio slots [(base, size, gsi)]."""
    config = acpi.AcpiConfig(
        base=layout.ACPI_TABLES_START, lapic_base=layout.LAPIC_BASE, ioapic_base=layout.IOAPIC_BASE,
        serial_port=layout.COM1_PORT, serial_irq=layout.COM1_IRQ,
        rtc_port=layout.RTC_PORT, rtc_irq=layout.RTC_IRQ,
        sleep_control_port=layout.ACPI_SLEEP_CONTROL_PORT, sleep_status_port=layout.ACPI_SLEEP_STATUS_PORT,
        reset_port=layout.ACPI_SLEEP_CONTROL_PORT, reset_value=layout.ACPI_RESET_VALUE,
        virtio=[acpi.VirtioMmioSlot(base, size, gsi) for base, size, gsi in virtio_slots])
    blob, rsdp = acpi.build(config)
    if len(blob) > layout.ACPI_TABLES_SIZE:
        raise ValueError(f"the ACPI tables take {len(blob)} bytes, more than their {layout.ACPI_TABLES_SIZE}")
    return blob, rsdp


class _Offset:
    """A device seen at a second port range: offsets there continue its first range's."""

    def __init__(self, device, offset: int):
        self._device = device
        self._offset = offset

    def read(self, offset, size):
        return self._device.read(self._offset + offset, size)

    def write(self, offset, size, value):
        self._device.write(self._offset + offset, size, value)
