"""Interrupt lines as devices see them: a callable `line(level: bool)`.

The interrupt controller belongs to the engine (in the kernel on KVM, Python models on
unicorn), and the engine is built after the devices, so devices get a DeferredLine that the
machine connects to `engine.irq_line(gsi)` once the engine exists.
"""


class DeferredLine:
    def __init__(self, gsi: int):
        self.gsi = gsi
        self._target = None
        self._level = False

    def __call__(self, level: bool) -> None:
        self._level = level
        target = self._target
        if target is not None:
            target(level)

    def connect(self, target) -> None:
        """Route the line to `target`; a level raised before now is passed on at once."""
        self._target = target
        if self._level:
            target(True)

    @property
    def level(self) -> bool:
        """The level the device drives now (what a snapshot records)."""
        return self._level

    def restore_level(self, level: bool) -> None:
        """A level from a snapshot, before connect() passes it on."""
        self._level = bool(level)
