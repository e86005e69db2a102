"""A GDB remote serial protocol stub (`vmm run --gdb 127.0.0.1:1234 [--gdb-wait]`).

    server = GdbServer(make_target(engine, memory), parse_address("127.0.0.1:1234"), wait=True)
    outcome = server.serve()            # on the vCPU thread; returns when the VM has ended

Threads: serve() runs the guest on the calling thread (the vCPU thread: KVM requires the
thread that created the vCPU's kick handler, unicorn one thread per engine). An accept
thread takes connections; a reader thread per connection parses packets and queues them
for serve(), and turns gdb's Ctrl-C (a 0x03 byte) into target.interrupt() at once, so a
guest that runs without exits can still be stopped.

Sessions:
  - Only loopback addresses are accepted (the protocol has no authentication and can
    write guest memory): parse_address() refuses anything else with a UsageError.
  - One client at a time: a second connection is closed at once while one is attached.
  - Without --gdb-wait the guest starts at once; a client that attaches later stops it
    (as gdb expects) where it happens to be.
  - A client that disconnects, or detaches (D), leaves the guest running without
    breakpoints; another client may attach later. `k` ends the VM (Outcome "interrupted").
  - When the guest ends (debug-exit, halt...), the client gets W<status> (or X<signal>)
    and serve() returns the Outcome once the client has gone (or after LINGER seconds).
    A crash (triple fault, emulation failure...) is first reported as a SIGSEGV stop, so
    registers and memory can be inspected; continuing then ends the session with X0b.
  - SIGINT to the VMM process ends the session and the VM (Outcome "interrupted").

Protocol: qSupported (PacketSize, qXfer:features:read+, QStartNoAckMode+), target.xml
(i386:x86-64: gdb's org.gnu.gdb.i386.core, .sse and .segments features), ?, g/G, p/P, m/M
(guest virtual addresses, through the page tables; unmapped -> E14), Z0/z0 and Z1/z1
(execution breakpoints; see target.py for how each engine implements them), s, c, Ctrl-C,
D, k, vKill, qAttached, qC, qfThreadInfo/qsThreadInfo, Hg/Hc, T, vCont? (empty: gdb then
uses s and c), ack mode and QStartNoAckMode. Anything else gets the empty reply
("not supported"). Malformed input: a bad checksum gets '-' (in ack mode), bytes outside
a packet are ignored, a packet longer than MAX_PACKET is dropped with '-'.
"""
import collections
import ipaddress
import queue
import signal
import socket
import threading
import time

from ..errors import UsageError
from ..outcome import CRASHES, DEBUG_EXIT, INTERRUPTED, TIMEOUT, Outcome
from .target import SIGINT, SIGKILL, SIGSEGV, SIGTRAP, MemoryFault

PACKET_SIZE = 0x4000            # the largest packet we send or accept (qSupported PacketSize)
MAX_PACKET = PACKET_SIZE        # longer incoming packets are dropped
LINGER = 10.0                   # seconds to wait for a client after the guest ended
ACCEPT_POLL = 0.2               # seconds between checks for close() in the accept thread
STOP_POLL = 0.2                 # seconds between checks for a VMM stop request while stopped
THREAD_ID = 1
E_MEMORY = "E14"                # EFAULT: gdb says "Cannot access memory at address ..."
E_INVALID = "E16"               # EINVAL

# --- registers: gdb's amd64 target description -----------------------------------------------------
# (name, bits) in the order of the `g` packet; numbering follows from the order, as in gdb's
# features/i386/64bit-core.xml, 64bit-sse.xml and 64bit-segments.xml.
GPR_ORDER = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENT_ORDER = ("cs", "ss", "ds", "es", "fs", "gs")
X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
REGISTERS = ([(name, 64) for name in GPR_ORDER] + [("rip", 64), ("eflags", 32)]
             + [(name, 32) for name in SEGMENT_ORDER] + [(f"st{i}", 80) for i in range(8)]
             + [(name, 32) for name in X87_CONTROL] + [(f"xmm{i}", 128) for i in range(16)]
             + [("mxcsr", 32), ("fs_base", 64), ("gs_base", 64)])
REGISTER_INDEX = {name: i for i, (name, _) in enumerate(REGISTERS)}
WRITABLE = frozenset(GPR_ORDER) | {"rip", "eflags", "fs_base", "gs_base"}

TARGET_XML = """<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386:x86-64</architecture>
  <feature name="org.gnu.gdb.i386.core">
    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/><field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/><field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
    <reg name="rax" bitsize="64" type="int64"/>
    <reg name="rbx" bitsize="64" type="int64"/>
    <reg name="rcx" bitsize="64" type="int64"/>
    <reg name="rdx" bitsize="64" type="int64"/>
    <reg name="rsi" bitsize="64" type="int64"/>
    <reg name="rdi" bitsize="64" type="int64"/>
    <reg name="rbp" bitsize="64" type="data_ptr"/>
    <reg name="rsp" bitsize="64" type="data_ptr"/>
    <reg name="r8" bitsize="64" type="int64"/>
    <reg name="r9" bitsize="64" type="int64"/>
    <reg name="r10" bitsize="64" type="int64"/>
    <reg name="r11" bitsize="64" type="int64"/>
    <reg name="r12" bitsize="64" type="int64"/>
    <reg name="r13" bitsize="64" type="int64"/>
    <reg name="r14" bitsize="64" type="int64"/>
    <reg name="r15" bitsize="64" type="int64"/>
    <reg name="rip" bitsize="64" type="code_ptr"/>
    <reg name="eflags" bitsize="32" type="i386_eflags"/>
    <reg name="cs" bitsize="32" type="int32"/>
    <reg name="ss" bitsize="32" type="int32"/>
    <reg name="ds" bitsize="32" type="int32"/>
    <reg name="es" bitsize="32" type="int32"/>
    <reg name="fs" bitsize="32" type="int32"/>
    <reg name="gs" bitsize="32" type="int32"/>
    <reg name="st0" bitsize="80" type="i387_ext"/>
    <reg name="st1" bitsize="80" type="i387_ext"/>
    <reg name="st2" bitsize="80" type="i387_ext"/>
    <reg name="st3" bitsize="80" type="i387_ext"/>
    <reg name="st4" bitsize="80" type="i387_ext"/>
    <reg name="st5" bitsize="80" type="i387_ext"/>
    <reg name="st6" bitsize="80" type="i387_ext"/>
    <reg name="st7" bitsize="80" type="i387_ext"/>
    <reg name="fctrl" bitsize="32" type="int" group="float"/>
    <reg name="fstat" bitsize="32" type="int" group="float"/>
    <reg name="ftag" bitsize="32" type="int" group="float"/>
    <reg name="fiseg" bitsize="32" type="int" group="float"/>
    <reg name="fioff" bitsize="32" type="int" group="float"/>
    <reg name="foseg" bitsize="32" type="int" group="float"/>
    <reg name="fooff" bitsize="32" type="int" group="float"/>
    <reg name="fop" bitsize="32" type="int" group="float"/>
  </feature>
  <feature name="org.gnu.gdb.i386.sse">
    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/>
    <vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/>
    <vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v4_float" type="v4f"/>
      <field name="v2_double" type="v2d"/>
      <field name="v16_int8" type="v16i8"/>
      <field name="v8_int16" type="v8i16"/>
      <field name="v4_int32" type="v4i32"/>
      <field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="i386_mxcsr" size="4">
      <field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/>
      <field name="ZE" start="2" end="2"/><field name="OE" start="3" end="3"/>
      <field name="UE" start="4" end="4"/><field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/><field name="IM" start="7" end="7"/>
      <field name="DM" start="8" end="8"/><field name="ZM" start="9" end="9"/>
      <field name="OM" start="10" end="10"/><field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/><field name="FZ" start="15" end="15"/>
    </flags>
""" + "".join(f'    <reg name="xmm{i}" bitsize="128" type="vec128"/>\n' for i in range(16)) + """\
    <reg name="mxcsr" bitsize="32" type="i386_mxcsr" group="vector"/>
  </feature>
  <feature name="org.gnu.gdb.i386.segments">
    <reg name="fs_base" bitsize="64" type="int"/>
    <reg name="gs_base" bitsize="64" type="int"/>
  </feature>
</target>
"""


def register_values(state, fpu) -> dict:
    """{register name: int} for every register of the `g` packet (x87/SSE from `fpu`, a
    dict as KvmEngine.get_fpu_state() returns it, or zeros)."""
    values = {name: state.regs[name] for name in GPR_ORDER}
    values.update(rip=state.rip, eflags=state.rflags & 0xFFFF_FFFF,
                  fs_base=state.fs.base, gs_base=state.gs.base)
    for name in SEGMENT_ORDER:
        values[name] = getattr(state, name).selector
    fpu = fpu or {}
    st = fpu.get("st") or [bytes(10)] * 8
    xmm = fpu.get("xmm") or [bytes(16)] * 16
    for i in range(8):
        values[f"st{i}"] = int.from_bytes(st[i][:10], "little")
    for i in range(16):
        values[f"xmm{i}"] = int.from_bytes(xmm[i][:16], "little")
    values.update(fctrl=fpu.get("fctrl", 0x37F), fstat=fpu.get("fstat", 0),
                  ftag=_full_tag_word(fpu.get("ftag", 0)), fiseg=0, foseg=0,
                  fioff=fpu.get("fioff", 0) & 0xFFFF_FFFF, fooff=fpu.get("fooff", 0) & 0xFFFF_FFFF,
                  fop=fpu.get("fop", 0), mxcsr=fpu.get("mxcsr", 0x1F80))
    return values


def _full_tag_word(abridged: int) -> int:
    """FXSAVE's abridged tag byte (1 = valid) -> the x87 tag word (00 valid, 11 empty)."""
    return sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(8))


def encode_registers(values: dict) -> str:
    return "".join(_encode(values[name], bits) for name, bits in REGISTERS)


def _encode(value: int, bits: int) -> str:
    return (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little").hex()


def apply_register(state, name: str, value: int) -> bool:
    """Write one register into a CpuState; False if gdb may not change it here."""
    if name in GPR_ORDER:
        state.regs[name] = value
    elif name == "rip":
        state.rip = value
    elif name == "eflags":
        state.rflags = (state.rflags & ~0xFFFF_FFFF) | value | 0x2
    elif name == "fs_base":
        state.fs.base = value
    elif name == "gs_base":
        state.gs.base = value
    else:
        return False
    return True


# --- addresses --------------------------------------------------------------------------------------
def parse_address(text: str) -> tuple:
    """"HOST:PORT" -> (host, port) for a loopback host (127.0.0.0/8, ::1, localhost); port 0
    picks a free one. Anything else is a UsageError."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise UsageError(f"--gdb {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1234")
    host = host.strip("[]") or "127.0.0.1"
    if host == "localhost":
        host = "127.0.0.1"
    try:
        port = int(port_text, 10)
        if not 0 <= port <= 65535:
            raise ValueError
    except ValueError:
        raise UsageError(f"--gdb {text!r}: {port_text!r} is not a TCP port number") from None
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--gdb {text!r}: the gdb stub listens on loopback addresses only "
                         f"(127.0.0.1, ::1 or localhost), not {host!r}")
    return host, port


# --- packets ------------------------------------------------------------------------------------------
def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(payload: bytes) -> bytes:
    """$payload#xx"""
    return b"$" + payload + b"#%02x" % checksum(payload)


def escape_binary(data: bytes) -> bytes:
    """The protocol's binary escape: '#', '$', '}' and '*' become '}' + (byte ^ 0x20)."""
    out = bytearray()
    for byte in data:
        if byte in b"#$}*":
            out += bytes((0x7D, byte ^ 0x20))
        else:
            out.append(byte)
    return bytes(out)


def unescape_binary(data: bytes) -> bytes:
    out = bytearray()
    it = iter(data)
    for byte in it:
        out.append(next(it, 0) ^ 0x20 if byte == 0x7D else byte)
    return bytes(out)


class PacketReader:
    """Turns the byte stream from gdb into events, whatever arrives:
    ("packet", payload), ("bad", None) for a checksum mismatch or an overlong packet,
    ("interrupt", None) for 0x03 outside a packet, ("ack", b"+") and ("nak", b"-")."""

    def __init__(self, max_packet: int = MAX_PACKET):
        self.max_packet = max_packet
        self._buffer = bytearray()
        self._in_packet = False
        self._skipping = False          # inside an overlong packet: drop until '#'xx

    def feed(self, data: bytes) -> list:
        events = []
        for byte in data:
            self._byte(byte, events)
        return events

    def _byte(self, byte: int, events: list) -> None:
        buf = self._buffer
        if not self._in_packet:
            if byte == 0x24:                                    # '$'
                self._in_packet, self._skipping = True, False
                buf.clear()
            elif byte == 0x03:
                events.append(("interrupt", None))
            elif byte == 0x2B:
                events.append(("ack", b"+"))
            elif byte == 0x2D:
                events.append(("nak", b"-"))
            return                                              # other bytes: garbage, ignored
        if byte == 0x24 and not self._checksum_pending():       # a new '$' restarts the packet
            buf.clear()
            self._skipping = False
            return
        buf.append(byte)
        hash_at = buf.find(b"#")
        if hash_at < 0:
            if len(buf) > self.max_packet:
                self._skipping = True
                buf.clear()
            return
        if len(buf) < hash_at + 3:
            return
        payload, digits = bytes(buf[:hash_at]), bytes(buf[hash_at + 1:hash_at + 3])
        self._in_packet = False
        buf.clear()
        if self._skipping:
            self._skipping = False
            events.append(("bad", None))
            return
        try:
            good = int(digits, 16) == checksum(payload)
        except ValueError:
            good = False
        events.append(("packet", payload) if good else ("bad", None))

    def _checksum_pending(self) -> bool:
        return b"#" in self._buffer


# --- the connection --------------------------------------------------------------------------------
class Connection:
    """One gdb client: its socket, ack mode, and a reader thread feeding `events`."""

    def __init__(self, sock, server):
        self.sock = sock
        self.server = server
        self.ack_mode = True
        self.closed = False
        self._send_lock = threading.Lock()
        self._last_sent = None
        self._reader = None

    def start(self) -> None:
        """Start reading (only once the server knows this connection as its client)."""
        self._reader = _start_thread(self._read_loop, "gdb-reader")

    def _read_loop(self) -> None:
        reader = PacketReader()
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                for kind, payload in reader.feed(data):
                    if kind == "packet":
                        if self.ack_mode:
                            self._send_raw(b"+")
                        self.server.post(("packet", self, payload))
                    elif kind == "bad":
                        if self.ack_mode:
                            self._send_raw(b"-")
                    elif kind == "nak":
                        if self.ack_mode and self._last_sent is not None:
                            self._send_raw(self._last_sent)
                    elif kind == "interrupt":
                        self.server.client_interrupt(self)
        except OSError:
            pass
        self.server.post(("disconnect", self, None))

    def send(self, payload) -> None:
        if isinstance(payload, str):
            payload = payload.encode("latin-1")
        packet = frame(payload)
        self._last_sent = packet
        self._send_raw(packet)

    def _send_raw(self, data: bytes) -> None:
        with self._send_lock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                pass                    # the reader sees the disconnect

    def close(self) -> None:
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def _start_thread(target, name: str) -> threading.Thread:
    """A daemon thread with every signal blocked, so that SIGINT and the vCPU kick signal
    always go to the threads that act on them."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread


# --- the server ----------------------------------------------------------------------------------------
class GdbServer:
    """Listens on a loopback address; serve() runs the guest and the session (module doc)."""

    def __init__(self, target, address=("127.0.0.1", 1234), wait: bool = False, linger: float = LINGER):
        self.target = target
        self.wait = wait
        self.linger = linger
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.listener.bind(address)
            self.listener.listen(1)
        except OSError as error:
            self.listener.close()
            raise UsageError(f"--gdb {address[0]}:{address[1]}: cannot listen there: {error.strerror}") from None
        self.listener.settimeout(ACCEPT_POLL)
        self.address = self.listener.getsockname()[:2]
        self.port = self.address[1]
        self.client = None                  # the attached Connection
        self.running = None                 # while the guest runs: "free" (no client) or "client"
        self.refused = 0                    # second clients turned away
        self._events = queue.Queue()
        self._pending = collections.deque()     # events taken early, for the session
        self._lock = threading.Lock()
        self._closing = False
        self._closed = False
        self._last_stop = f"T{SIGTRAP:02x}thread:{THREAD_ID:02x};"
        self._accepter = None

    # --- threads ---------------------------------------------------------------------------------
    def post(self, event) -> None:
        self._events.put(event)

    def client_interrupt(self, connection) -> None:
        """gdb's Ctrl-C (reader thread): stop the guest if it runs for that client."""
        with self._lock:
            if connection is self.client and self.running == "client":
                self.target.interrupt()

    def _run(self, how: str, action):
        """Run the guest (target.resume or .step) as `how`; interrupts are accepted only
        meanwhile, and one that comes too late to stop this run is dropped."""
        with self._lock:
            self.running = how
        try:
            return action()
        finally:
            with self._lock:
                self.running = None
                self.target.cancel_interrupt()

    def _accept_loop(self) -> None:
        while not self._closing:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setblocking(True)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                busy = self.client is not None or self._closing
                if not busy:
                    self.client = Connection(sock, self)
                    self.post(("attach", self.client, None))
                    if self.running == "free":
                        self.target.interrupt()     # gdb expects a stopped target
                    self.client.start()
            if busy:
                self.refused += 1
                sock.close()

    # --- the session (vCPU thread) ---------------------------------------------------------------------
    def serve(self) -> Outcome:
        """Run the guest under the debugger until it ends; returns how it ended."""
        self._accepter = _start_thread(self._accept_loop, "gdb-accept")
        try:
            return self._session()
        except KeyboardInterrupt:
            outcome = Outcome(INTERRUPTED, detail="interrupted by SIGINT while debugging")
            self._send_exit(outcome, signal_number=SIGINT)
            return outcome
        finally:
            self.close()

    def _session(self) -> Outcome:
        target = self.target
        stopped = self.wait             # with --gdb-wait, nothing runs before a client says so
        while True:
            if not stopped:
                stop = self._run("free", target.resume)     # until it ends or a client attaches
                if stop.ended and stop.signal is None:
                    return self._ended(stop.outcome)
                if self._drain_events():
                    stopped = True      # a client attached: it will ask `?`
                    self._last_stop = f"T{SIGSEGV if stop.ended else SIGTRAP:02x}thread:{THREAD_ID:02x};"
                elif stop.ended:        # a crash with nobody attached: nothing to inspect
                    return stop.outcome
                continue
            result = self._serve_client()
            if isinstance(result, Outcome):
                return result
            stopped = False             # the client went away: the guest runs on, freely

    def _drain_events(self) -> bool:
        """Handle queued attach/disconnect events while no session is active; True if a
        client is attached now. Its packets are kept, in order, for the session."""
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return self.client is not None
            kind, connection, _ = event
            if kind == "disconnect":
                self._drop(connection)
            elif kind == "packet" and connection is self.client:
                self._pending.append(event)
            # packets from a client that is gone: dropped

    def _next_event(self, timeout=None):
        if self._pending:
            return self._pending.popleft()
        try:
            return self._events.get(timeout=timeout)
        except queue.Empty:
            return None

    def _serve_client(self):
        """Packets from the attached client while the guest is stopped. Returns an Outcome
        when the VM has ended (or was killed), None when the client went away."""
        while True:
            if self.client is None and not self.wait:
                return None
            event = self._next_event(STOP_POLL)     # (--gdb-wait: the first client's attach)
            if event is None:
                stop = self.target.stop_requested()
                if stop is not None:                # the VMM ends the run (Machine.stop, Ctrl-A x)
                    return self._ended(stop, reply=True)
                continue
            kind, connection, payload = event
            if kind == "attach":
                continue
            if kind == "disconnect":
                if connection is self.client:
                    self._drop(connection)
                    self.target.clear_breakpoints()
                    self.wait = False
                    return None
                continue
            if connection is not self.client:
                continue
            result = self._packet(payload)
            if isinstance(result, Outcome):
                return result
            if result == "detach":
                self.target.clear_breakpoints()
                self._drop(connection)
                self.wait = False
                return None

    def _drop(self, connection) -> None:
        with self._lock:
            if self.client is connection:
                self.client = None
        connection.close()

    # --- packets -------------------------------------------------------------------------------------
    def _packet(self, payload: bytes):
        """Answer one packet. Returns an Outcome if the VM ended for good, "detach", or None."""
        client = self.client
        text = payload.decode("latin-1")
        command = text[:1]
        try:
            if command in ("c", "s"):
                return self._resume(text)
            if command == "k" or text.startswith("vKill"):
                if text.startswith("vKill"):
                    client.send("OK")
                return Outcome(INTERRUPTED, detail="killed by the debugger")
            if command == "D":
                client.send("OK")
                return "detach"
            client.send(self._query(text))
        except _Answered:
            pass
        except MemoryFault:
            client.send(E_MEMORY)
        except (ValueError, IndexError, KeyError):
            client.send(E_INVALID)
        return None

    def _query(self, text: str) -> str:
        command = text[:1]
        target = self.target
        if text.startswith("qSupported"):
            return f"PacketSize={PACKET_SIZE:x};qXfer:features:read+;QStartNoAckMode+"
        if text == "QStartNoAckMode":
            self.client.ack_mode = False        # gdb acks this OK, then stops acking
            self.client.send("OK")
            raise _Answered
        if text.startswith("qXfer:features:read:"):
            return self._xfer_features(text)
        if command == "?":
            return self._last_stop
        if command == "g":
            return encode_registers(register_values(target.read_state(), target.read_fpu()))
        if command == "G":
            return self._write_all_registers(text[1:])
        if command == "p":
            number = int(text[1:], 16)
            if number >= len(REGISTERS):
                return E_INVALID
            name, bits = REGISTERS[number]
            return _encode(register_values(target.read_state(), target.read_fpu())[name], bits)
        if command == "P":
            number_text, value_text = text[1:].split("=", 1)
            name, bits = REGISTERS[int(number_text, 16)]
            state = target.read_state()
            if not apply_register(state, name, int.from_bytes(bytes.fromhex(value_text), "little")):
                return E_INVALID
            target.write_state(state)
            return "OK"
        if command == "m":
            address, length = (int(part, 16) for part in text[1:].split(","))
            return target.read_memory(address, min(length, PACKET_SIZE // 2 - 16)).hex()
        if command == "M":
            where, data = text[1:].split(":", 1)
            address, length = (int(part, 16) for part in where.split(","))
            data = bytes.fromhex(data)
            if len(data) != length:
                return E_INVALID
            target.write_memory(address, data)
            return "OK"
        if command in ("Z", "z"):
            kind, address, _size = text[1:].split(",")[:3]
            if kind not in ("0", "1"):
                return ""               # watchpoints: not supported
            if command == "Z":
                target.add_breakpoint(int(address, 16))
            else:
                target.remove_breakpoint(int(address, 16))
            return "OK"
        if command == "H" or command == "T":
            return "OK"
        if text == "qC":
            return f"QC{THREAD_ID:x}"
        if text == "qAttached" or text.startswith("qAttached:"):
            return "1"
        if text == "qfThreadInfo":
            return f"m{THREAD_ID:x}"
        if text == "qsThreadInfo":
            return "l"
        if text.startswith("qSymbol"):
            return "OK"
        return ""                       # vCont?, vMustReplyEmpty, qTStatus, qOffsets...

    def _xfer_features(self, text: str) -> str:
        annex, _, span = text[len("qXfer:features:read:"):].partition(":")
        if annex != "target.xml":
            return "E00"
        offset, length = (int(part, 16) for part in span.split(","))
        document = TARGET_XML.encode()
        chunk = document[offset:offset + min(length, PACKET_SIZE // 2)]
        more = offset + len(chunk) < len(document)
        return ("m" if more else "l") + escape_binary(chunk).decode("latin-1")

    def _write_all_registers(self, hex_text: str) -> str:
        data = bytes.fromhex(hex_text)
        state = self.target.read_state()
        offset = 0
        for name, bits in REGISTERS:
            size = bits // 8
            if offset + size > len(data):
                break
            if name in WRITABLE:
                apply_register(state, name, int.from_bytes(data[offset:offset + size], "little"))
            offset += size
        self.target.write_state(state)
        return "OK"

    def _resume(self, text: str):
        """c / s, with an optional address to resume at. Sends the stop reply; returns the
        Outcome when the VM has ended, else None."""
        if len(text) > 1:
            state = self.target.read_state()
            state.rip = int(text[1:].split(";")[0], 16)
            self.target.write_state(state)
        stop = self._run("client", self.target.step if text[0] == "s" else self.target.resume)
        if stop.signal is not None:         # stopped (also: crashed, still inspectable)
            self._last_stop = f"T{stop.signal:02x}thread:{THREAD_ID:02x};"
            self.client.send(self._last_stop)
            return None
        return self._ended(stop.outcome, reply=True)

    # --- the end ----------------------------------------------------------------------------------------
    def _ended(self, outcome: Outcome, reply: bool = False) -> Outcome:
        """The guest has ended: tell the client (now, or when it asks), then wait for it to
        go (at most `linger` seconds) and return the outcome."""
        self._last_stop = exit_reply(outcome)
        if reply and self.client is not None:
            self.client.send(self._last_stop)
        if outcome.reason == INTERRUPTED:
            if not reply and self.client is not None:
                self.client.send(self._last_stop)
            return outcome                  # Ctrl-C at the VMM: no waiting for the client
        deadline = time.monotonic() + self.linger
        while self.client is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            event = self._next_event(remaining)
            if event is None:
                break
            kind, connection, payload = event
            if kind == "attach":
                continue
            if connection is not self.client:
                continue
            if kind == "disconnect":
                self._drop(connection)
                break
            text = payload.decode("latin-1")
            if text[:1] == "k" or text.startswith("vKill") or text[:1] == "D":
                if text[:1] != "k":
                    self.client.send("OK")
                break
            if text[:1] in ("c", "s", "?"):
                self.client.send(self._last_stop)
            elif text.startswith(("qSupported", "QStartNoAckMode", "qXfer", "q", "H")):
                try:
                    self.client.send(self._query(text))
                except _Answered:
                    pass
                except Exception:           # noqa: BLE001 - registers of a dead VM may be gone
                    self.client.send("E01")
            else:
                self.client.send("E01")
        return outcome

    def _send_exit(self, outcome: Outcome, signal_number: int) -> None:
        if self.client is not None:
            self.client.send(f"X{signal_number:02x}")

    def close(self) -> None:
        """Idempotent: the client, the listening socket, and the target's debug hooks."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        with self._lock:
            client, self.client = self.client, None
        if client is not None:
            client.close()
        try:
            self.listener.close()
        except OSError:
            pass
        if self._accepter is not None and self._accepter is not threading.current_thread():
            self._accepter.join(timeout=2 * ACCEPT_POLL + 1)
        self.target.close()


class _Answered(Exception):
    """The query sent its own reply (QStartNoAckMode must answer before ack mode changes)."""


def exit_reply(outcome: Outcome) -> str:
    """W<status> for a guest that exited (debug-exit, halt, power-off), X<signal> otherwise."""
    if outcome.reason == DEBUG_EXIT:
        return f"W{(outcome.status or 0) & 0xFF:02x}"
    if outcome.reason == INTERRUPTED:
        if "killed" in (outcome.detail or ""):
            return f"X{SIGKILL:02x}"
        status = outcome.status or 0
        return f"X{status - 128 if 128 < status < 256 else SIGINT:02x}"    # 128 + signal, as shells say
    if outcome.reason in CRASHES:
        return f"X{SIGSEGV:02x}"
    if outcome.reason == TIMEOUT:
        return f"X{SIGKILL:02x}"
    return "W00"
