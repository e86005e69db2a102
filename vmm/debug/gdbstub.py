"""A GDB remote serial protocol stub (`vmm run --gdb 127.0.0.1:1234 [--gdb-wait]`).

    server = GdbServer(DebugTarget(engine.debug()), parse_address("127.0.0.1:1234"), wait=True)
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
  - SIGINT to the VMM process ends the session and the VM (Outcome "interrupted"); so does
    --timeout, which bounds the whole session (debug/session.py).

Protocol: qSupported (PacketSize, qXfer:features:read+, QStartNoAckMode+), target.xml
(i386:x86-64: gdb's org.gnu.gdb.i386.core, .sse and .segments features), ?, g/G, p/P, m/M
(guest virtual addresses, through the page tables; unmapped -> E14), Z0/z0 and Z1/z1
(execution breakpoints; see target.py for how each engine implements them), s, c, Ctrl-C,
D, k, vKill, qAttached, qC, qfThreadInfo/qsThreadInfo, Hg/Hc, T, vCont? (empty: gdb then
uses s and c), ack mode and QStartNoAckMode. Anything else gets the empty reply
("not supported"). Malformed input: a bad checksum gets '-' (in ack mode), bytes outside
a packet are ignored, a packet longer than MAX_PACKET is dropped with '-', and a number that
is not plain unsigned hex (a sign, "0x"), a register past the last, an address or range past
2^64 get E16 (gdb_packets.parse_hex).
"""
import collections
import ipaddress
import queue
import socket
import threading
import time

from ..errors import UsageError
from ..outcome import CRASHES, DEBUG_EXIT, INTERRUPTED, TIMEOUT, Outcome
from .gdb_packets import ADDRESS_LIMIT, PACKET_SIZE, Connection, escape_binary, parse_hex, parse_range, start_thread
from .gdb_registers import (REGISTERS, TARGET_XML, WRITABLE, apply_register, encode_register, encode_registers,
                            register_values)
from .target import SIGINT, SIGKILL, SIGSEGV, SIGTRAP, MemoryFault

LINGER = 10.0                   # seconds to wait for a client after the guest ended
ACCEPT_POLL = 0.2               # seconds between checks for close() in the accept thread
STOP_POLL = 0.2                 # seconds between checks for a VMM stop request while stopped
THREAD_ID = 1
E_MEMORY = "E14"                # EFAULT: gdb says "Cannot access memory at address ..."
E_INVALID = "E16"               # EINVAL

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
        self._accepter = start_thread(self._accept_loop, "gdb-accept")
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
            number = parse_hex(text[1:])
            if number >= len(REGISTERS):
                return E_INVALID
            name, bits = REGISTERS[number]
            return encode_register(register_values(target.read_state(), target.read_fpu())[name], bits)
        if command == "P":
            number_text, value_text = text[1:].split("=", 1)
            name, bits = REGISTERS[parse_hex(number_text, limit=len(REGISTERS))]
            state = target.read_state()
            if not apply_register(state, name, int.from_bytes(bytes.fromhex(value_text), "little")):
                return E_INVALID
            target.write_state(state)
            return "OK"
        if command == "m":
            address, length = parse_range(text[1:])
            return target.read_memory(address, min(length, PACKET_SIZE // 2 - 16)).hex()
        if command == "M":
            where, data = text[1:].split(":", 1)
            address, length = parse_range(where)
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
                target.add_breakpoint(parse_hex(address, limit=ADDRESS_LIMIT))
            else:
                target.remove_breakpoint(parse_hex(address, limit=ADDRESS_LIMIT))
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
        offset, length = (parse_hex(part) for part in span.split(","))
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
            state.rip = parse_hex(text[1:].split(";")[0], limit=ADDRESS_LIMIT)
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
