"""The CMOS RTC, the i8042 reset line and the ACPI power-management registers."""
import calendar

import pytest

from vmm.devices import rtc as R
from vmm.devices.acpi_pm import AcpiPm
from vmm.devices.i8042 import I8042
from vmm.outcome import SYSTEM_EVENT, RunControl

# 2026-12-04 15:07:09 UTC, a Friday
NOW = calendar.timegm((2026, 12, 4, 15, 7, 9))


def cmos_read(rtc, register):
    rtc.write(R.INDEX, 1, register | R.NMI_DISABLE)
    return rtc.read(R.DATA, 1)


def cmos_write(rtc, register, value):
    rtc.write(R.INDEX, 1, register)
    rtc.write(R.DATA, 1, value)


def test_rtc_gives_host_time_in_bcd_24_hour_by_default():
    rtc = R.CmosRtc(now=lambda: NOW)
    fields = [cmos_read(rtc, r) for r in (R.REG_SECONDS, R.REG_MINUTES, R.REG_HOURS, R.REG_DAY,
                                          R.REG_MONTH, R.REG_YEAR, R.REG_CENTURY, R.REG_WEEKDAY)]
    assert fields == [0x09, 0x07, 0x15, 0x04, 0x12, 0x26, 0x20, 6]
    assert cmos_read(rtc, R.REG_D) & R.D_VALID_RAM and not cmos_read(rtc, R.REG_A) & 0x80


def test_rtc_binary_and_12_hour_formats():
    rtc = R.CmosRtc(now=lambda: NOW)
    cmos_write(rtc, R.REG_B, R.B_BINARY)                  # binary, 12-hour
    assert cmos_read(rtc, R.REG_HOURS) == 3 | R.HOUR_PM
    assert cmos_read(rtc, R.REG_YEAR) == 26 and cmos_read(rtc, R.REG_MINUTES) == 7


def test_guest_setting_the_time_moves_only_its_clock():
    now = [NOW]
    rtc = R.CmosRtc(now=lambda: now[0])
    cmos_write(rtc, R.REG_B, R.B_SET | R.B_24_HOUR)
    for register, value in ((R.REG_YEAR, 0x30), (R.REG_MONTH, 0x01), (R.REG_DAY, 0x02),
                            (R.REG_HOURS, 0x03), (R.REG_MINUTES, 0x04), (R.REG_SECONDS, 0x05)):
        cmos_write(rtc, register, value)
    assert cmos_read(rtc, R.REG_MINUTES) == 0x04          # frozen while SET
    cmos_write(rtc, R.REG_B, R.B_24_HOUR)
    now[0] += 10
    assert cmos_read(rtc, R.REG_YEAR) == 0x30 and cmos_read(rtc, R.REG_SECONDS) == 0x15


def test_a_nonsensical_date_from_the_guest_keeps_the_old_time():
    rtc = R.CmosRtc(now=lambda: NOW)
    cmos_write(rtc, R.REG_B, R.B_SET | R.B_24_HOUR | R.B_BINARY)
    cmos_write(rtc, R.REG_CENTURY, 0xFF)                  # year 25599: past what the clock can show
    cmos_write(rtc, R.REG_MONTH, 0xFF)
    cmos_write(rtc, R.REG_B, R.B_24_HOUR | R.B_BINARY)
    assert cmos_read(rtc, R.REG_YEAR) == 26 and cmos_read(rtc, R.REG_CENTURY) == 20


def test_rtc_nvram_keeps_bytes_and_register_c_reads_zero():
    rtc = R.CmosRtc(now=lambda: NOW)
    cmos_write(rtc, 0x40, 0xA5)
    assert cmos_read(rtc, 0x40) == 0xA5 and cmos_read(rtc, R.REG_C) == 0


def test_i8042_self_test_command_byte_and_reset():
    control = RunControl()
    kbc = I8042(control)
    kbc.write(4, 1, 0xAA)
    assert kbc.read(4, 1) & 1 and kbc.read(0, 1) == 0x55 and not kbc.read(4, 1) & 1
    kbc.write(4, 1, 0x60)
    kbc.write(0, 1, 0x47)
    kbc.write(4, 1, 0x20)
    assert kbc.read(0, 1) == 0x47
    assert control.stop is None
    kbc.write(4, 1, 0xFE)
    assert control.stop.reason == SYSTEM_EVENT and "i8042" in control.stop.detail


def test_i8042_output_port_reset_line():
    control = RunControl()
    kbc = I8042(control)
    kbc.write(4, 1, 0xD1)
    kbc.write(0, 1, 0x02)                                  # bit 0 clear: reset
    assert control.stop is not None


@pytest.mark.parametrize("value,expected", [
    ((5 << 2) | (1 << 5), "powered off"),                  # SLP_TYP=5 with SLP_EN
    (0x01, "reset"),                                       # the FADT's reset value
    (5 << 2, None),                                        # no SLP_EN: nothing happens
    ((3 << 2) | (1 << 5), None),                           # S3: not offered
])
def test_acpi_sleep_control(value, expected):
    control = RunControl()
    AcpiPm(control, s5_sleep_type=5, reset_value=1).write(0, 1, value)
    if expected is None:
        assert control.stop is None
    else:
        assert control.stop.reason == SYSTEM_EVENT and expected in control.stop.detail
