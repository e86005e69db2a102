"""QEMU's isa-debug-exit device (hw/misc/debugexit.c): a guest write ends the VM.

QEMU exits with (value << 1) | 1 so that a test can tell a guest exit from QEMU's own
errors; we report `value` itself as the guest's status.
"""
from ..outcome import DEBUG_EXIT, Outcome


class DebugExit:
    def __init__(self, control):
        self._control = control

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1        # write-only: reads float high, as in QEMU

    def write(self, offset: int, size: int, value: int) -> None:
        self._control.request_stop(Outcome(DEBUG_EXIT, status=value,
                                           detail=f"guest wrote {value:#x} to the debug-exit port"))
