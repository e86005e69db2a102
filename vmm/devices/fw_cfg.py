"""QEMU's fw_cfg device on the x86 I/O ports: how firmware finds the kernel, initrd,
command line and memory map (QEMU docs/specs/fw_cfg.rst, hw/nvram/fw_cfg.c).

Three registers:
- the selector (FW_CFG_SELECTOR_PORT, a 16-bit write): chooses an item and rewinds to
  its first byte;
- the data port (FW_CFG_DATA_PORT, 8-bit reads): the selected item's bytes in order;
  reads past the end give 0. As in QEMU, an 8-bit read at either port reads data and
  8-bit writes are ignored (item writes through the data port went away in QEMU 2.4);
- the DMA address (FW_CFG_DMA_PORT, 8 bytes, big-endian): the guest writes the address
  of a FWCfgDmaAccess {be32 control, be32 length, be64 address} as two 32-bit `out`s,
  high half then low half; the low write runs the transfer at once, which then writes the
  control word back (0, or the ERROR bit). Reading the register gives "QEMU CFG".

Items are byte strings. Numbers are little-endian, except in the file directory, which
is big-endian. `FwCfg.for_pvh_boot` presents a PVH ELF kernel exactly as QEMU does
(hw/i386/x86.c x86_load_linux): the ELF is already in RAM, FW_CFG_KERNEL_* describe it
and the firmware (firmware/ in this repository, or QEMU's pvh.bin) builds hvm_start_info.
"""
import struct

from .. import layout
from ..arch.x86 import pvh
from ..errors import UsageError
from ..loader.pvh import check_fits, load_kernel, module_address, pvh_entry

# Item keys (QEMU include/standard-headers/linux/qemu_fw_cfg.h).
SIGNATURE = 0x00
ID = 0x01
RAM_SIZE = 0x03
NB_CPUS = 0x05
KERNEL_ADDR = 0x07
KERNEL_SIZE = 0x08
INITRD_ADDR = 0x0A
INITRD_SIZE = 0x0B
KERNEL_ENTRY = 0x10
KERNEL_DATA = 0x11
INITRD_DATA = 0x12
CMDLINE_ADDR = 0x13
CMDLINE_SIZE = 0x14
CMDLINE_DATA = 0x15
SETUP_ADDR = 0x16
SETUP_SIZE = 0x17
SETUP_DATA = 0x18
FILE_DIR = 0x19
FILE_FIRST = 0x20               # files get keys from here on, in name order
WRITE_CHANNEL = 0x4000          # a selector bit that asks for write access: ignored
ARCH_LOCAL = 0x8000             # x86-specific items live in their own key space

ID_TRADITIONAL = 0x01           # FW_CFG_ID bits: the port interface, and DMA
ID_DMA = 0x02

# FWCfgDmaAccess.control bits; with SELECT, the upper 16 bits are the key.
DMA_ERROR = 0x01
DMA_READ = 0x02
DMA_SKIP = 0x04
DMA_SELECT = 0x08
DMA_WRITE = 0x10
DMA_SIGNATURE = b"QEMU CFG"
DMA_ACCESS = struct.Struct(">IIQ")
FILE_ENTRY = struct.Struct(">IHH56s")   # size, select, reserved, name
FILE_NAME_MAX = 55                      # 56 bytes with the NUL
E820_ENTRY = struct.Struct("<QQI")      # QEMU's struct e820_entry: addr, length, type

# QEMU hands the firmware the first 8 KiB of the kernel file as "setup data", whatever
# the format; for a PVH ELF the firmware can check the ELF header there.
SETUP_HEADER_SIZE = 8192

SELECTOR_OFFSET = 0             # offsets within the selector/data range
DATA_OFFSET = layout.FW_CFG_DATA_PORT - layout.FW_CFG_SELECTOR_PORT
SELECTOR_PORT_COUNT = 2


class FwCfg:
    """The item store and the selector/data registers; `self.dma` is the DMA register.

    `memory` (GuestMemory) is needed for DMA only; without it FW_CFG_ID offers no DMA.
    """

    def __init__(self, memory=None, dma: bool = True):
        self._memory = memory
        self.dma = FwCfgDma(self) if dma and memory is not None else None
        self._items = {}                # key -> bytes
        self._files = {}                # name -> key
        self._key = None                # the selected item's key, and its bytes
        self._data = b""
        self._offset = 0
        self.add_bytes(SIGNATURE, b"QEMU")
        self.add_u32(ID, ID_TRADITIONAL | (ID_DMA if self.dma else 0))
        self._update_directory()

    # --- building the items (host side) ------------------------------------------------
    def add_bytes(self, key: int, data: bytes) -> None:
        self._items[key] = bytes(data)

    def add_u16(self, key: int, value: int) -> None:
        self.add_bytes(key, value.to_bytes(2, "little"))

    def add_u32(self, key: int, value: int) -> None:
        self.add_bytes(key, value.to_bytes(4, "little"))

    def add_u64(self, key: int, value: int) -> None:
        self.add_bytes(key, value.to_bytes(8, "little"))

    def add_string(self, key: int, text: str) -> None:
        """A NUL-terminated string, as QEMU's fw_cfg_add_string stores it."""
        self.add_bytes(key, text.encode() + b"\0")

    def add_file(self, name: str, data: bytes) -> int:
        """A named file: listed in FILE_DIR, which QEMU keeps sorted by name. Returns its key."""
        if not 0 < len(name.encode()) <= FILE_NAME_MAX:
            raise ValueError(f"fw_cfg file name {name!r} must be 1-{FILE_NAME_MAX} bytes")
        if name in self._files:
            raise ValueError(f"fw_cfg file {name!r} added twice")
        # Keys follow name order, so re-key every file (QEMU does the same while the
        # machine is being built); nothing has been selected yet at that point.
        contents = {n: self._items.pop(k) for n, k in self._files.items()}
        contents[name] = bytes(data)
        self._files = {n: FILE_FIRST + i for i, n in enumerate(sorted(contents))}
        for n, key in self._files.items():
            self._items[key] = contents[n]
        self._update_directory()
        return self._files[name]

    def item(self, key: int) -> bytes:
        return self._items.get(key, b"")

    def _update_directory(self) -> None:
        entries = b"".join(FILE_ENTRY.pack(len(self._items[key]), key, 0, name.encode())
                           for name, key in sorted(self._files.items()))
        self._items[FILE_DIR] = len(self._files).to_bytes(4, "big") + entries

    @classmethod
    def for_pvh_boot(cls, memory, kernel, initrd: bytes | None, cmdline: str, dma: bool = True) -> "FwCfg":
        """QEMU's -kernel/-initrd/-append for a PVH ELF `kernel` (an ElfImage): its segments
        are loaded into `memory` now (QEMU does this too, before the firmware runs), and the
        items say where they are, where the initrd goes and what the command line is."""
        cmdline_bytes = cmdline.encode() + b"\0"
        if len(cmdline_bytes) > layout.CMDLINE_MAX_SIZE:
            raise UsageError(f"the kernel command line is {len(cmdline_bytes)} bytes; "
                             f"the limit is {layout.CMDLINE_MAX_SIZE}")
        pvh_entry(kernel)
        check_fits(memory.size, kernel, initrd)
        entry, low, high = load_kernel(memory, kernel, firmware=True)

        cfg = cls(memory, dma=dma)
        cfg.add_u64(RAM_SIZE, memory.size)
        cfg.add_u16(NB_CPUS, 1)
        cfg.add_u32(KERNEL_ENTRY, entry)
        cfg.add_u32(KERNEL_ADDR, low)
        cfg.add_u32(KERNEL_SIZE, high - low)
        cfg.add_u32(CMDLINE_SIZE, len(cmdline_bytes))
        cfg.add_bytes(CMDLINE_DATA, cmdline_bytes)
        header = kernel.data[:SETUP_HEADER_SIZE]
        cfg.add_u32(SETUP_SIZE, SETUP_HEADER_SIZE)
        cfg.add_bytes(SETUP_DATA, header + bytes(SETUP_HEADER_SIZE - len(header)))
        if initrd is not None:
            # Where the direct PVH boot puts module 0: the top of RAM, page-aligned.
            cfg.add_u32(INITRD_ADDR, module_address(memory.size, len(initrd)))
            cfg.add_u32(INITRD_SIZE, len(initrd))
            cfg.add_bytes(INITRD_DATA, initrd)
        cfg.add_file("etc/e820", e820_file(memory.size))
        return cfg

    # --- bus wiring --------------------------------------------------------------------
    def register(self, bus) -> None:
        """Claim the selector/data ports and, with DMA, the DMA address register."""
        bus.register(layout.FW_CFG_SELECTOR_PORT, SELECTOR_PORT_COUNT, self)
        if self.dma is not None:
            bus.register(layout.FW_CFG_DMA_PORT, layout.FW_CFG_DMA_PORT_COUNT, self.dma)

    # --- guest side: the selector and data ports ------------------------------------------
    def read(self, offset: int, size: int) -> int:
        if size != 1:
            return (1 << (8 * size)) - 1    # QEMU accepts only byte reads here
        at = self._offset
        data = self._data
        if at < len(data):
            self._offset = at + 1
            return data[at]
        return 0

    def write(self, offset: int, size: int, value: int) -> None:
        if offset == SELECTOR_OFFSET and size == 2:
            self.select(value)

    def select(self, key: int) -> None:
        self._key = key & ~WRITE_CHANNEL
        self._data = self._items.get(self._key, b"")
        self._offset = 0

    # --- snapshots: the selection here, the items as one blob (devices/state.py) ------------
    STATE_VERSION = 1
    ITEM_HEADER = struct.Struct("<II")      # key, length; then the item's bytes

    def save_state(self) -> dict:
        return {"key": self._key, "offset": self._offset,
                "dma_address": None if self.dma is None else self.dma._address}

    def load_state(self, state: dict) -> None:
        from .state import need
        key = need(state, "key", (int, type(None)), "fw_cfg")
        self._key, self._data = key, b"" if key is None else self._items.get(key, b"")
        self._offset = need(state, "offset", int, "fw_cfg")
        address = state.get("dma_address")
        if self.dma is not None and isinstance(address, int):
            self.dma._address = address

    def items_blob(self) -> bytes:
        """Every item, for a snapshot: what the guest could still read."""
        return b"".join(self.ITEM_HEADER.pack(key, len(data)) + data for key, data in sorted(self._items.items()))

    @classmethod
    def from_items_blob(cls, memory, blob: bytes, dma: bool) -> "FwCfg":
        from .state import StateError
        cfg = cls(memory, dma=dma)
        at = 0
        while at < len(blob):
            if at + cls.ITEM_HEADER.size > len(blob):
                raise StateError("fw_cfg: the item file is truncated")
            key, length = cls.ITEM_HEADER.unpack_from(blob, at)
            at += cls.ITEM_HEADER.size
            if at + length > len(blob):
                raise StateError("fw_cfg: the item file is truncated")
            cfg._items[key] = blob[at:at + length]
            at += length
        return cfg

    # --- DMA ---------------------------------------------------------------------------
    def dma_transfer(self, access_addr: int) -> None:
        """Run the FWCfgDmaAccess at guest-physical `access_addr` (QEMU fw_cfg_dma_transfer).
        Every guest address is checked; a bad one sets the ERROR bit, never raises."""
        memory = self._memory
        if not memory.contains(access_addr, DMA_ACCESS.size):
            if memory.contains(access_addr, 4):     # report it if the control word is RAM
                self._write_status(access_addr, DMA_ERROR)
            return
        control, length, address = DMA_ACCESS.unpack(memory.view(access_addr, DMA_ACCESS.size))
        if control & DMA_SELECT:
            self.select(control >> 16)
        if control & DMA_READ:
            status = self._dma_read(address, length)
        elif control & DMA_WRITE:
            status = DMA_ERROR if length else 0    # no item is writable
        elif control & DMA_SKIP:
            self._advance(length)
            status = 0
        else:
            status = 0
        self._write_status(access_addr, status)

    def _write_status(self, access_addr: int, status: int) -> None:
        self._memory.view(access_addr, 4)[:] = status.to_bytes(4, "big")
        self._memory.wrote(access_addr, 4)

    def _advance(self, length: int) -> None:
        """Move on in the selected item; like QEMU, the offset stops at its end."""
        self._offset = min(self._offset + length, len(self._data))

    def _dma_read(self, address: int, length: int) -> int:
        if length == 0:
            return 0
        memory = self._memory
        if not memory.contains(address, length):
            return DMA_ERROR
        chunk = self._data[self._offset:self._offset + length]
        view = memory.view(address, length)
        view[:len(chunk)] = chunk
        if len(chunk) < length:                 # past the end of the item: zeros
            view[len(chunk):] = bytes(length - len(chunk))
        memory.wrote(address, length)
        self._advance(length)
        return 0


class FwCfgDma:
    """The 8-byte DMA address register at FW_CFG_DMA_PORT (big-endian)."""

    def __init__(self, fw_cfg: FwCfg):
        self._fw_cfg = fw_cfg
        self._address = 0

    def read(self, offset: int, size: int) -> int:
        # The register reads as the big-endian signature, byte for byte.
        return int.from_bytes(DMA_SIGNATURE[offset:offset + size].ljust(size, b"\xff"), "little")

    def write(self, offset: int, size: int, value: int) -> None:
        if size == 4:
            # The bytes the guest wrote, read as a big-endian number.
            value = int.from_bytes(value.to_bytes(4, "little"), "big")
            if offset == 0:
                self._address = value << 32
            elif offset == 4:
                address, self._address = self._address | value, 0
                self._fw_cfg.dma_transfer(address)
        elif size == 8 and offset == 0:
            address, self._address = int.from_bytes(value.to_bytes(8, "little"), "big"), 0
            self._fw_cfg.dma_transfer(address)


def e820_file(memory_size: int) -> bytes:
    """etc/e820: the same map as the direct PVH boot's (arch/x86/pvh.e820_map)."""
    return b"".join(E820_ENTRY.pack(addr, size, kind) for addr, size, kind in pvh.e820_map(memory_size))
