"""Guest RAM: one anonymous mmap, shared by the device models and every CPU engine.

Device models and loaders never touch raw pointers; they read and write through
bounds-checked memoryviews. The only pointer that leaves this module is `host_address`,
which an engine hands to KVM_SET_USER_MEMORY_REGION or unicorn's mem_map_ptr.
"""
import ctypes
import mmap

from .errors import GuestMemoryError
from .layout import PAGE_SIZE


class GuestMemory:
    """`size` bytes of guest-physical RAM starting at guest address 0."""

    def __init__(self, size: int, backing_fd: int | None = None):
        """`backing_fd`: a file of at least `size` bytes whose contents the RAM starts with (a
        snapshot's memory file), mapped MAP_PRIVATE: nothing is read up front, pages come in
        from the file as the guest touches them, and the guest's writes never reach the file."""
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"guest RAM size must be a positive multiple of {PAGE_SIZE}")
        self.size = size
        if backing_fd is None:
            # Anonymous memory is zero-filled and lazily allocated: a large guest costs host
            # memory only for the pages it touches.
            self._mmap = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        else:
            self._mmap = mmap.mmap(backing_fd, size, flags=mmap.MAP_PRIVATE,
                                   prot=mmap.PROT_READ | mmap.PROT_WRITE)
        # Exporting a ctypes array pins the mmap (it cannot be closed under an engine's feet)
        # and gives us the host address. It is released first in close().
        self._pin = (ctypes.c_ubyte * size).from_buffer(self._mmap)
        self.host_address = ctypes.addressof(self._pin)
        self._view = memoryview(self._mmap)
        self._write_listeners = []
        self._roms = []                 # [(gpa, mmap, pin)]: read-only images outside RAM

    # --- read-only images outside RAM (firmware) ---------------------------------------------
    def add_rom(self, gpa: int, data: bytes) -> None:
        """Map `data` read-only at `gpa` (page-aligned, outside RAM): a firmware image.
        Engines map every region() into the guest; devices never DMA into a ROM."""
        size = (len(data) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if gpa % PAGE_SIZE or gpa < self.size:
            raise ValueError(f"ROM at {gpa:#x} must be page-aligned and above RAM")
        rom = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        rom[:len(data)] = data
        self._roms.append((gpa, rom, (ctypes.c_ubyte * size).from_buffer(rom)))

    def roms(self):
        """[(gpa, bytes)] of the read-only images (a snapshot keeps them)."""
        return [(gpa, bytes(rom)) for gpa, rom, _ in self._roms]

    def regions(self):
        """[(gpa, size, host_address, read_only)]: RAM first, then the ROMs."""
        return [(0, self.size, self.host_address, False)] + [
            (gpa, len(rom), ctypes.addressof(pin), True) for gpa, rom, pin in self._roms]

    # --- bounds-checked access -------------------------------------------------------------
    def check(self, gpa: int, length: int) -> None:
        """Raise GuestMemoryError unless [gpa, gpa+length) lies inside RAM."""
        if gpa < 0 or length < 0 or gpa + length > self.size:
            raise GuestMemoryError(f"guest range {gpa:#x}+{length:#x} is outside RAM (size {self.size:#x})")

    def contains(self, gpa: int, length: int) -> bool:
        return 0 <= gpa and 0 <= length and gpa + length <= self.size

    def view(self, gpa: int, length: int) -> memoryview:
        """A writable view of guest RAM; writing to it does not notify listeners (see wrote())."""
        self.check(gpa, length)
        return self._view[gpa:gpa + length]

    def read(self, gpa: int, length: int) -> bytes:
        self.check(gpa, length)
        return self._mmap[gpa:gpa + length]

    def write(self, gpa: int, data) -> None:
        self.check(gpa, len(data))
        self._view[gpa:gpa + len(data)] = data
        self.wrote(gpa, len(data))

    def read_mapped(self, gpa: int, length: int):
        """The bytes at [gpa, gpa+length) in RAM or in one ROM, as the CPU reads them (a
        descriptor table in firmware), or None when the range lies in neither."""
        if self.contains(gpa, length):
            return self._mmap[gpa:gpa + length]
        for start, rom, _ in self._roms:
            if start <= gpa and gpa + length <= start + len(rom):
                return rom[gpa - start:gpa - start + length]
        return None

    def read_u32(self, gpa: int) -> int:
        return int.from_bytes(self.read(gpa, 4), "little")

    def read_u64(self, gpa: int) -> int:
        return int.from_bytes(self.read(gpa, 8), "little")

    def resident_bytes(self) -> int:
        """How much of guest RAM the host holds in memory: the pages the guest or the VMM
        touched (for the density benchmark's per-VM memory)."""
        from .host.process import resident_pages
        return resident_pages(self.host_address, self.size, PAGE_SIZE) * PAGE_SIZE

    # --- host-side writes that may hold code -----------------------------------------------
    def on_write(self, listener) -> None:
        """Call listener(gpa, length) after each host-side write (software engines drop
        translated code for the range: unicorn does not notice host writes by itself)."""
        self._write_listeners.append(listener)

    def remove_write_listener(self, listener) -> None:
        """Stop calling `listener` (an engine that closes)."""
        if listener in self._write_listeners:
            self._write_listeners.remove(listener)

    def wrote(self, gpa: int, length: int) -> None:
        """Tell listeners that the host changed [gpa, gpa+length) through a view (DMA)."""
        for listener in self._write_listeners:
            listener(gpa, length)

    # --- lifetime ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._mmap is None:
            return
        self._write_listeners.clear()
        roms = [rom for _, rom, _ in self._roms]
        self._roms.clear()              # drops the ctypes pins, so the mmaps can close
        for rom in roms:
            rom.close()
        self._view.release()
        del self._pin
        self.host_address = 0
        try:
            self._mmap.close()
        except BufferError:
            # A device still holds a view: the mapping stays valid until that view dies,
            # then the garbage collector unmaps it. Nothing can touch it through us now.
            pass
        self._mmap = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
