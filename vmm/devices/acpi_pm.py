"""ACPI hardware-reduced power management: the FADT's sleep control, sleep status and reset
registers (ACPI 6.5, 4.8.3.7 "Sleep Control and Status Registers", 4.8.3.6 "Reset Register"),
at the ports vmm/layout.py gives and vmm/arch/x86/acpi/tables.py announces.

Writing SLP_EN with SLP_TYP = 5 (the DSDT's \\_S5) powers the VM off; writing the FADT's reset
value resets it. Both end the run as a SYSTEM_EVENT, which `vmm run` reports with status 0
(like Firecracker and QEMU -no-reboot: a guest-initiated reboot ends the VM).
"""
from ..outcome import SYSTEM_EVENT, Outcome

SLP_EN = 1 << 5
SLP_TYP_SHIFT = 2
SLP_TYP_MASK = 0x7
CONTROL, STATUS = 0, 1                 # offsets from the first port
POWER_OFF_DETAIL = "guest powered off (ACPI S5)"
RESET_DETAIL = "guest reset the machine (ACPI reset register)"


class AcpiPm:
    def __init__(self, control, s5_sleep_type: int, reset_value: int):
        self._control = control
        self._s5 = s5_sleep_type
        self._reset_value = reset_value

    def read(self, offset: int, size: int) -> int:
        return 0                         # sleep status: no wake event pending

    def write(self, offset: int, size: int, value: int) -> None:
        if offset != CONTROL:
            return                       # writing the status register clears bits we never set
        if value & 0xFF == self._reset_value:
            self._control.request_stop(Outcome(SYSTEM_EVENT, detail=RESET_DETAIL))
        elif value & SLP_EN and (value >> SLP_TYP_SHIFT) & SLP_TYP_MASK == self._s5:
            self._control.request_stop(Outcome(SYSTEM_EVENT, detail=POWER_OFF_DETAIL))
