"""The PC's 8042 keyboard controller, as far as a guest needs it to reboot: the status and
command ports, the command byte, the self-tests, and the reset line (command 0xFE, or an
output-port write with bit 0 clear), which ends the VM as Linux's `reboot=k` expects.
There is no keyboard or mouse behind it. Firecracker's devices/legacy/i8042.rs and crosvm's
devices/src/i8042.rs are as small; command numbers from the IBM PC/AT technical reference.
"""
from ..outcome import SYSTEM_EVENT, Outcome

DATA, COMMAND = 0, 4                   # offsets from the data port (0x60): 0x60 and 0x64
STATUS_OUTPUT_FULL = 1 << 0
STATUS_SYSTEM_FLAG = 1 << 2            # set after a successful self-test (POST done)
CMD_READ_COMMAND_BYTE = 0x20
CMD_WRITE_COMMAND_BYTE = 0x60
CMD_DISABLE_AUX, CMD_ENABLE_AUX = 0xA7, 0xA8
CMD_TEST_AUX = 0xA9
CMD_SELF_TEST = 0xAA
CMD_TEST_KEYBOARD = 0xAB
CMD_DISABLE_KEYBOARD, CMD_ENABLE_KEYBOARD = 0xAD, 0xAE
CMD_READ_OUTPUT_PORT = 0xD0
CMD_WRITE_OUTPUT_PORT = 0xD1
CMD_PULSE_RESET = 0xFE
SELF_TEST_PASSED = 0x55
INTERFACE_TEST_PASSED = 0x00
OUTPUT_PORT_RESET_LINE = 1 << 0        # 0 holds the CPU in reset
OUTPUT_PORT_DEFAULT = 0x01 | 0x02      # not in reset, A20 enabled
RESET_DETAIL = "guest reset the machine (i8042 reset line)"


class I8042:
    def __init__(self, control):
        self._control = control
        self._output = []                # bytes for the guest to read from the data port
        self._command_byte = 0
        self._pending = None             # a command waiting for its data byte

    STATE_VERSION = 1
    _STATE_FIELDS = ("_output", "_command_byte", "_pending")

    def save_state(self) -> dict:
        from .state import pick
        return pick(self, self._STATE_FIELDS)

    def load_state(self, state: dict) -> None:
        from .state import StateError, put
        put(self, state, self._STATE_FIELDS)
        if not all(isinstance(b, int) and 0 <= b < 256 for b in self._output):
            raise StateError("i8042: its output buffer holds something that is not a byte")

    def read(self, offset: int, size: int) -> int:
        if offset == COMMAND:
            return STATUS_SYSTEM_FLAG | (STATUS_OUTPUT_FULL if self._output else 0)
        if offset == DATA and self._output:
            return self._output.pop(0)
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        value &= 0xFF
        if offset == COMMAND:
            self._command(value)
        elif offset == DATA:
            pending, self._pending = self._pending, None
            if pending == CMD_WRITE_COMMAND_BYTE:
                self._command_byte = value
            elif pending == CMD_WRITE_OUTPUT_PORT and not value & OUTPUT_PORT_RESET_LINE:
                self._reset()

    def _command(self, command: int) -> None:
        replies = {CMD_READ_COMMAND_BYTE: self._command_byte, CMD_SELF_TEST: SELF_TEST_PASSED,
                   CMD_TEST_KEYBOARD: INTERFACE_TEST_PASSED, CMD_TEST_AUX: INTERFACE_TEST_PASSED,
                   CMD_READ_OUTPUT_PORT: OUTPUT_PORT_DEFAULT}
        if command in replies:
            self._output.append(replies[command])
        elif command in (CMD_WRITE_COMMAND_BYTE, CMD_WRITE_OUTPUT_PORT):
            self._pending = command
        elif command == CMD_PULSE_RESET:
            self._reset()

    def _reset(self) -> None:
        self._control.request_stop(Outcome(SYSTEM_EVENT, detail=RESET_DETAIL))
