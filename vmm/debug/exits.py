"""Watching VM exits: a ring of the last few (for crash reports), a log of all of them
(--trace-exits) and a histogram by port and MMIO address (--stats).

All three are *observers* of device accesses, fed by wrappers around the buses
(ObservedPortBus, ObservedMmioBus). That makes them engine-agnostic (KVM exits and unicorn
hooks both end in a bus access) and free when off: the machine hands the engine the plain
bus, and the exit loop is exactly what it is without them. When on, each access costs one
extra Python call per observer.

Exits that are not device accesses (HLT, shutdown...) reach observers through
`observer.other(name)`, called by an engine from its slow path only, once its debug
interface was told (EngineDebug.observe_exits; KvmEngine has such exits).

    ring = ExitRing(16)
    ports, mmio = observe_buses(ports, mmio, [ring])          # before creating the engine
    engine = Engine(memory, ports, mmio, control, cpuid)
    engine.debug().observe_exits(ring)                        # non-I/O exits too
    ...
    format_crash_report(engine.debug(), ring)
"""
import time

PIO_IN, PIO_OUT, MMIO_READ, MMIO_WRITE, OTHER = range(5)
KIND_NAMES = ("pio-in", "pio-out", "mmio-read", "mmio-write", "exit")
DEFAULT_RING_SIZE = 16
DEFAULT_TRACE_LIMIT = 1_000_000


class ExitObserver:
    """What an observer implements (both methods may be no-ops)."""

    def access(self, kind: int, address: int, size: int, value: int) -> None:
        """A device access: kind PIO_IN/PIO_OUT/MMIO_READ/MMIO_WRITE; for reads `value` is
        what the device answered."""

    def other(self, name: str, detail: str = "") -> None:
        """A non-I/O exit (an engine's slow path): name like "hlt", "shutdown"."""


# --- the bus wrappers ---------------------------------------------------------------------------
class ObservedPortBus:
    """A PortBus that reports each access to `access(kind, port, size, value)`. Everything
    else (register, unclaimed counters...) is the wrapped bus's."""

    def __init__(self, bus, access):
        self._bus = bus
        self._read = bus.read
        self._write = bus.write
        self._access = access

    def read(self, port: int, size: int) -> int:
        value = self._read(port, size)
        self._access(PIO_IN, port, size, value)
        return value

    def write(self, port: int, size: int, value: int) -> None:
        self._access(PIO_OUT, port, size, value)
        self._write(port, size, value)

    def __getattr__(self, name):
        return getattr(self._bus, name)


class ObservedMmioBus:
    """The MmioBus counterpart of ObservedPortBus."""

    def __init__(self, bus, access):
        self._bus = bus
        self._read = bus.read
        self._write = bus.write
        self._access = access

    def read(self, addr: int, size: int) -> int:
        value = self._read(addr, size)
        self._access(MMIO_READ, addr, size, value)
        return value

    def write(self, addr: int, size: int, value: int) -> None:
        self._access(MMIO_WRITE, addr, size, value)
        self._write(addr, size, value)

    def __getattr__(self, name):
        return getattr(self._bus, name)


class Observers(ExitObserver):
    """Several observers as one."""

    def __init__(self, observers):
        self.observers = list(observers)

    def access(self, kind, address, size, value):
        for observer in self.observers:
            observer.access(kind, address, size, value)

    def other(self, name, detail=""):
        for observer in self.observers:
            observer.other(name, detail)


def combine(observers):
    """None for no observers, the observer itself for one, else an Observers fan-out."""
    observers = [o for o in observers if o is not None]
    if not observers:
        return None
    return observers[0] if len(observers) == 1 else Observers(observers)


def observe_buses(ports, mmio, observers):
    """(ports, mmio) to give the engine: the buses themselves when there is no observer
    (zero cost), else wrappers that report every access."""
    observer = combine(observers)
    if observer is None:
        return ports, mmio
    return ObservedPortBus(ports, observer.access), ObservedMmioBus(mmio, observer.access)


# --- the ring of recent exits -------------------------------------------------------------------
class ExitRing(ExitObserver):
    """The last `size` exits. record() costs a few list stores and an index update, with no
    allocation (the values are already Python ints); formatting happens only in lines()."""

    def __init__(self, size: int = DEFAULT_RING_SIZE):
        if size <= 0:
            raise ValueError("an exit ring needs at least one slot")
        self.size = size
        self.total = 0                      # exits recorded since creation
        self._kind = [0] * size
        self._address = [0] * size
        self._width = [0] * size
        self._value = [0] * size
        self._name = [None] * size          # for OTHER: the exit's name and detail

    def access(self, kind, address, size, value):
        i = self.total % self.size
        self._kind[i] = kind
        self._address[i] = address
        self._width[i] = size
        self._value[i] = value
        self.total += 1

    def other(self, name, detail=""):
        i = self.total % self.size
        self._kind[i] = OTHER
        self._name[i] = (name, detail)
        self.total += 1

    record = access

    def entries(self) -> list:
        """[(number, kind, address, size, value, name)] oldest first."""
        first = max(0, self.total - self.size)
        out = []
        for n in range(first, self.total):
            i = n % self.size
            name = self._name[i] if self._kind[i] == OTHER else None
            out.append((n + 1, self._kind[i], self._address[i], self._width[i], self._value[i], name))
        return out

    def lines(self) -> list:
        return [f"#{n} " + describe(kind, address, size, value, name)
                for n, kind, address, size, value, name in self.entries()]


def describe(kind, address, size, value, name=None) -> str:
    if kind == OTHER:
        text, detail = name or ("?", "")
        return f"{text}{' ' + detail if detail else ''}"
    where = f"port={address:#06x}" if kind in (PIO_IN, PIO_OUT) else f"addr={address:#x}"
    return f"{KIND_NAMES[kind]:<10} {where} size={size} data={value:#0{2 + 2 * size}x}"


# --- --trace-exits: every exit, with its time ------------------------------------------------------
class ExitTraceWriter(ExitObserver):
    """One line per exit: seconds since the trace began, kind, port or address, size, data.
    At `limit` lines it writes a last line saying so and stops writing (the VM goes on)."""

    def __init__(self, out, limit: int = DEFAULT_TRACE_LIMIT, clock=time.monotonic):
        self._out = out
        self._limit = limit
        self._clock = clock
        self._start = clock()
        self.lines = 0
        self.stopped = limit <= 0
        out.write("# seconds    kind       port/address     size data\n")

    @classmethod
    def open(cls, path: str, limit: int = DEFAULT_TRACE_LIMIT, on_error=None) -> "ExitTraceWriter":
        """A writer to `path`; a write error goes to `on_error(text)` (user_files.OutputText)."""
        from ..user_files import OutputText
        return cls(OutputText(path, "exit trace", on_error), limit)

    def _emit(self, text: str) -> None:
        if self.stopped:
            return
        self._out.write(f"{self._clock() - self._start:12.6f} {text}\n")
        self.lines += 1
        if self.lines >= self._limit:
            self.stopped = True
            self._out.write(f"# trace limit of {self._limit} exits reached: exit tracing stopped, the VM went on\n")

    def access(self, kind, address, size, value):
        if not self.stopped:
            self._emit(describe(kind, address, size, value))

    def other(self, name, detail=""):
        if not self.stopped:
            self._emit(describe(OTHER, 0, 0, 0, (name, detail)))

    def close(self, outcome=None) -> None:
        """Write the run's end (its Outcome) and close the file."""
        if self._out is None:
            return
        if outcome is not None:
            self._out.write(f"{self._clock() - self._start:12.6f} end        {outcome.reason}: {outcome.detail}\n")
        self._out.close()
        self._out = None


# --- --stats: a histogram by port and MMIO address -------------------------------------------------
class ExitHistogram(ExitObserver):
    """Exit counts per (kind, port or address): one dict update per access."""

    def __init__(self):
        self.counts = [{} for _ in KIND_NAMES]      # per kind: {address: count}; OTHER by name

    def access(self, kind, address, size, value):
        counts = self.counts[kind]
        counts[address] = counts.get(address, 0) + 1

    def other(self, name, detail=""):
        counts = self.counts[OTHER]
        counts[name] = counts.get(name, 0) + 1

    def as_dict(self) -> dict:
        """{kind name: {port/address (or exit name): count}} without empty kinds."""
        return {KIND_NAMES[kind]: dict(counts) for kind, counts in enumerate(self.counts) if counts}

    def format(self, ports=None, mmio=None, top: int = 20) -> str:
        """The `top` busiest ports and addresses, with the device behind each when the
        buses are given (anything with device_at(address) -> (device, base) or None)."""
        rows = [(count, kind, address) for kind, counts in enumerate(self.counts)
                for address, count in counts.items()]
        rows.sort(key=lambda row: -row[0])
        lines = [f"exits by port/address (top {min(top, len(rows))} of {len(rows)}):"]
        for count, kind, address in rows[:top]:
            if kind == OTHER:
                lines.append(f"  {KIND_NAMES[kind]:<10} {address:<20} {count:>10}")
                continue
            bus = ports if kind in (PIO_IN, PIO_OUT) else mmio
            where = f"{address:#06x}" if kind in (PIO_IN, PIO_OUT) else f"{address:#x}"
            lines.append(f"  {KIND_NAMES[kind]:<10} {where:<20} {count:>10}  {_device_name(bus, address)}")
        return "\n".join(lines)


def _device_name(bus, address) -> str:
    found = bus.device_at(address) if bus is not None and hasattr(bus, "device_at") else None
    if found is None:
        return "(unclaimed)" if bus is not None else ""
    device, base = found
    return f"{type(device).__name__}+{address - base:#x}"
