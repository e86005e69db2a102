"""The GDB remote protocol's packet framing: `$payload#checksum`, the binary escape, a parser
(PacketReader) that turns whatever bytes arrive into events, never raising, and one client's
Connection, whose reader thread acks packets and hands them to the server (gdbstub.py).
"""
import re
import signal
import socket
import threading

PACKET_SIZE = 0x4000            # the largest packet we send or accept (qSupported PacketSize)
MAX_PACKET = PACKET_SIZE        # longer incoming packets are dropped


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


# --- one client --------------------------------------------------------------------------------------
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
        self._reader = start_thread(self._read_loop, "gdb-reader")

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


def start_thread(target, name: str) -> threading.Thread:
    """A daemon thread with every signal blocked, so that SIGINT and the vCPU kick signal
    always go to the threads that act on them."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
    return thread


# --- numbers in packets ---------------------------------------------------------------------------------
ADDRESS_LIMIT = 1 << 64
_HEX = re.compile(r"[0-9a-fA-F]{1,32}")


def parse_hex(text: str, limit: int | None = None) -> int:
    """A packet's unsigned hex number; ValueError (answered E16) for anything else: a sign,
    spaces, "0x", an empty field, or a value at or above `limit`."""
    if not _HEX.fullmatch(text):
        raise ValueError(f"not a hex number: {text!r}")
    value = int(text, 16)
    if limit is not None and value >= limit:
        raise ValueError(f"{text!r} is out of range")
    return value


def parse_range(text: str) -> tuple:
    """"ADDR,LENGTH" of an m or M packet, the range within the 64-bit address space."""
    address_text, length_text = text.split(",")
    address, length = parse_hex(address_text, limit=ADDRESS_LIMIT), parse_hex(length_text, limit=ADDRESS_LIMIT)
    if address + length > ADDRESS_LIMIT:
        raise ValueError("the range runs past the end of the address space")
    return address, length
