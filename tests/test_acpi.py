"""The ACPI tables and the AML encoder, checked by disassembling them with iasl (Debian's
acpica-tools, which `make test` installs): the tables must parse, with correct checksums,
and say what we meant."""
import shutil
import struct
import subprocess

import pytest

from vmm import layout
from vmm.arch.x86.acpi import aml
from vmm.arch.x86.acpi import tables as acpi


@pytest.fixture(scope="module")
def iasl():
    path = shutil.which("iasl")
    if path is None:
        pytest.skip("iasl not installed (acpica-tools; `make test` installs it)")
    return path


def config(virtio=2):
    return acpi.AcpiConfig(
        base=layout.ACPI_TABLES_START, lapic_base=layout.LAPIC_BASE, ioapic_base=layout.IOAPIC_BASE,
        serial_port=layout.COM1_PORT, serial_irq=layout.COM1_IRQ, rtc_port=layout.RTC_PORT,
        rtc_irq=layout.RTC_IRQ, sleep_control_port=layout.ACPI_SLEEP_CONTROL_PORT,
        sleep_status_port=layout.ACPI_SLEEP_STATUS_PORT, reset_port=layout.ACPI_SLEEP_CONTROL_PORT,
        reset_value=layout.ACPI_RESET_VALUE,
        virtio=[acpi.VirtioMmioSlot(layout.VIRTIO_MMIO_BASE + i * 0x1000, 0x1000, irq)
                for i, irq in zip(range(virtio), layout.VIRTIO_MMIO_IRQS)])


def disassemble(iasl, tmp_path, name, table):
    path = tmp_path / f"{name}.dat"
    path.write_bytes(table)
    result = subprocess.run([iasl, "-d", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checksum" not in (result.stdout + result.stderr).lower(), result.stdout
    return (tmp_path / f"{name}.dsl").read_text()


def test_dsdt_describes_com1_the_rtc_and_each_virtio_slot(iasl, tmp_path):
    text = disassemble(iasl, tmp_path, "DSDT", acpi.dsdt(config(virtio=3)))
    assert 'EisaId ("PNP0501")' in text and "0x03F8" in text and "{4}" in text
    assert 'EisaId ("PNP0B00")' in text and "{8}" in text
    assert text.count('Name (_HID, "LNRO0005")') == 3
    for i, irq in zip(range(3), layout.VIRTIO_MMIO_IRQS):
        assert f"0x{layout.VIRTIO_MMIO_BASE + i * 0x1000:08X},         // Address Base" in text
        assert f"0x{irq:08X}," in text
    assert text.count("Interrupt (ResourceConsumer, Level, ActiveHigh, Exclusive, ,, )") == 3
    assert "Name (\\_S5, Package (0x02)" in text and "0x05," in text


def test_fadt_is_hardware_reduced_with_sleep_and_reset_registers(iasl, tmp_path):
    text = disassemble(iasl, tmp_path, "FACP", acpi.fadt(config(), 0xE0040))
    assert "Hardware Reduced (V5) : 1" in text
    assert "Reset Register Supported (V2) : 1" in text
    assert "DSDT Address : 00000000000E0040" in text
    sleep = text[text.index("Sleep Control Register"):]
    assert "[SystemIO]" in sleep.splitlines()[1] and "0000000000000600" in sleep.splitlines()[5]
    assert "Value to cause reset : 01" in text


def test_madt_lists_the_local_apic_and_the_ioapic(iasl, tmp_path):
    text = disassemble(iasl, tmp_path, "APIC", acpi.madt(config()))
    assert "Local Apic Address : FEE00000" in text
    assert "[Processor Local APIC]" in text and "Processor Enabled : 1" in text
    assert "[I/O APIC]" in text and "Address : FEC00000" in text
    assert "Interrupt : 00000000" in text            # GSI base


def test_the_blob_starts_with_a_valid_rsdp_pointing_at_the_xsdt(iasl, tmp_path):
    blob, rsdp_address = acpi.build(config())
    assert rsdp_address == layout.ACPI_TABLES_START and rsdp_address % 16 == 0
    assert blob[:8] == b"RSD PTR " and sum(blob[:20]) % 256 == 0 and sum(blob[:36]) % 256 == 0
    xsdt_address = struct.unpack_from("<Q", blob, 24)[0]
    xsdt = blob[xsdt_address - rsdp_address:]
    length = struct.unpack_from("<I", xsdt, 4)[0]
    text = disassemble(iasl, tmp_path, "XSDT", xsdt[:length])
    pointers = struct.unpack_from("<2Q", xsdt, 36)
    assert [blob[p - rsdp_address:p - rsdp_address + 4] for p in pointers] == [b"FACP", b"APIC"]
    assert "ACPI Table Address   0" in text
    assert len(blob) <= layout.ACPI_TABLES_SIZE


@pytest.mark.parametrize("length,encoded", [(0, b"\x01"), (62, b"\x3f"), (63, b"\x41\x04"),
                                            (0x0FFD, b"\x4f\xff"), (0x0FFE, b"\x81\x00\x01")])
def test_pkg_length_counts_itself(length, encoded):
    assert aml.pkg_length(length) == encoded


def test_integers_take_the_shortest_form():
    assert aml.integer(0) == b"\x00" and aml.integer(1) == b"\x01"
    assert aml.integer(0x0A) == b"\x0a\x0a" and aml.integer(0x1234) == b"\x0b\x34\x12"
    assert aml.integer(1 << 40) == b"\x0e" + (1 << 40).to_bytes(8, "little")


def test_a_large_scope_round_trips_through_iasl(iasl, tmp_path):
    """Enough devices that Scope's PkgLength needs three bytes."""
    many = [aml.device(f"D{i:03X}", aml.name("_HID", aml.eisa_id("PNP0C02")), aml.name("_UID", aml.integer(i)))
            for i in range(200)]
    table = acpi.sdt(b"SSDT", 2, aml.scope("\\_SB", *many))
    text = disassemble(iasl, tmp_path, "SSDT", table)
    assert text.count("Device (D") == 200 and "Name (_UID, 0xC7)" in text


def test_bad_names_are_refused():
    with pytest.raises(ValueError):
        aml.name_seg("TOOLONG")
    with pytest.raises(ValueError):
        aml.eisa_id("pnp0501")
