"""The GDB remote stub (vmm/debug/gdbstub.py, gdb_packets.py, gdb_registers.py) and the debug
target (vmm/debug/target.py) on each engine's debug interface.

Three layers: the packet parser and helpers on their own; a raw protocol client (a thread
speaking RSP over the socket) against tiny guests on both engines, for the protocol and
its failure cases; and the machine's real gdb in batch mode against the guest kernel.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import xml.etree.ElementTree as ET

import pytest

from vmm.config import MachineConfig
from vmm.debug import gdb_registers
from vmm.debug.gdb_packets import MAX_PACKET, PacketReader, checksum, escape_binary, frame, unescape_binary
from vmm.debug.gdb_registers import REGISTERS, TARGET_XML
from vmm.debug.gdbstub import GdbServer, parse_address
from vmm.debug.target import DebugTarget
from vmm.engines import kvm_features
from vmm.engines.kvm import KvmEngine
from vmm.errors import UsageError
from vmm.machine import Machine
from vmm.outcome import DEBUG_EXIT, INTERRUPTED, SHUTDOWN, Outcome

from conftest import _probe, engine_params
from test_debug_support import COUNT_LOOP, ENTRY, LOOP_BODY, SPIN_UNTIL_RBX, synthetic_vm

RIP = gdb_registers.REGISTER_INDEX["rip"]
RBX = gdb_registers.REGISTER_INDEX["rbx"]
CS = gdb_registers.REGISTER_INDEX["cs"]
USER_CS = 0x33                                  # guest/kernel/layout.h
PROGRAM_TEXT_END = 0x100_0000                   # a guest program's code lies below (linked at 0x400000)
G_PACKET_HEX = sum(bits // 8 for _, bits in REGISTERS) * 2
TIMEOUT = 20.0


# --- the parser and helpers ----------------------------------------------------------------------------
def test_reader_events():
    reader = PacketReader()
    assert reader.feed(b"+$g#67") == [("ack", b"+"), ("packet", b"g")]
    assert reader.feed(b"-") == [("nak", b"-")]
    assert reader.feed(b"junk\x03$m0,4#") == [("interrupt", None)]          # split mid-packet
    assert reader.feed(b"fd") == [("packet", b"m0,4")]
    assert reader.feed(b"$g#00") == [("bad", None)]                          # wrong checksum
    assert reader.feed(b"$g#zz") == [("bad", None)]                          # not hex
    assert reader.feed(b"$ab$g#67") == [("packet", b"g")]                    # '$' restarts
    assert reader.feed(b"$" + b"x" * (MAX_PACKET + 10) + b"#00$g#67") == [("bad", None), ("packet", b"g")]


def test_frame_and_binary_escapes():
    assert frame(b"OK") == b"$OK#9a"
    assert checksum(b"OK") == 0x9A
    data = bytes(range(256))
    assert unescape_binary(escape_binary(data)) == data
    assert b"#" not in escape_binary(b"a#b$c}d*e")


@pytest.mark.parametrize("text,expected", [
    ("127.0.0.1:1234", ("127.0.0.1", 1234)),
    ("localhost:0", ("127.0.0.1", 0)),
    (":4321", ("127.0.0.1", 4321)),
    ("127.1.2.3:1", ("127.1.2.3", 1)),
    ("[::1]:1234", ("::1", 1234)),
])
def test_loopback_addresses(text, expected):
    assert parse_address(text) == expected


@pytest.mark.parametrize("text,message", [
    ("0.0.0.0:1234", "loopback addresses only"),
    ("192.168.1.10:1234", "loopback addresses only"),
    ("example.com:1234", "loopback addresses only"),
    ("127.0.0.1:99999", "is not a TCP port number"),
    ("127.0.0.1:http", "is not a TCP port number"),
    ("1234", "expected HOST:PORT"),
])
def test_other_addresses_are_refused(text, message):
    with pytest.raises(UsageError, match=message) as info:
        parse_address(text)
    assert "\n" not in str(info.value)


def test_target_xml_is_gdbs_amd64_description():
    root = ET.fromstring(TARGET_XML.split("\n", 2)[2])                    # after the XML/DOCTYPE lines
    assert root.find("architecture").text == "i386:x86-64"
    names = [reg.get("name") for feature in root.findall("feature") for reg in feature.findall("reg")]
    assert names == [name for name, _ in REGISTERS]
    assert [f.get("name") for f in root.findall("feature")] == [
        "org.gnu.gdb.i386.core", "org.gnu.gdb.i386.sse", "org.gnu.gdb.i386.segments"]


# --- a raw RSP client against tiny guests ------------------------------------------------------------------
class Client:
    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.buffer = b""
        self.ack = True

    def send(self, payload: bytes | str, raw: bool = False) -> None:
        data = payload.encode() if isinstance(payload, str) else payload
        self.sock.sendall(data if raw else frame(data))
        if self.ack and not raw:
            assert self._take(1) == b"+"

    def _take(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise EOFError("the stub closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def receive(self, ack: bool | None = None) -> str:
        while True:
            byte = self._take(1)
            if byte == b"$":
                break
        payload = b""
        while not payload.endswith(b"#"):
            payload += self._take(1)
        payload = payload[:-1]
        assert int(self._take(2), 16) == checksum(payload)
        if self.ack if ack is None else ack:
            self.sock.sendall(b"+")
        return payload.decode("latin-1")

    def ask(self, payload: str) -> str:
        self.send(payload)
        return self.receive()

    def register(self, number: int) -> int:
        return int.from_bytes(bytes.fromhex(self.ask(f"p{number:x}")), "little")

    def set_register(self, number: int, value: int) -> str:
        name, bits = REGISTERS[number]
        return self.ask(f"P{number:x}=" + value.to_bytes(bits // 8, "little").hex())

    def close(self):
        self.sock.close()


class Scratch:
    def __init__(self):
        self.value = 0

    def read(self, offset, size):
        return self.value

    def write(self, offset, size, value):
        self.value = value


def session(engine_name, code, script, wait=True, linger=2.0, start_client_after=0.0, port_device=False):
    """Serve a tiny guest on this thread while `script(client, server)` runs in another.
    Returns (outcome, the script's result, final CpuState)."""
    result = {}
    with synthetic_vm(engine_name, code) as g:
        if port_device:
            g.ports.register(0x80, 1, Scratch())
        server = GdbServer(DebugTarget(g.engine.debug()), ("127.0.0.1", 0), wait=wait, linger=linger)

        def run_script():
            try:
                time.sleep(start_client_after)
                client = Client(server.port)
                try:
                    result["value"] = script(client, server)
                finally:
                    client.close()
            except BaseException as error:          # noqa: BLE001 - reported below
                result["error"] = error

        thread = threading.Thread(target=run_script, daemon=True)
        thread.start()
        outcome = server.serve()
        thread.join(TIMEOUT)
        state = g.engine.get_state()
    if "error" in result:
        raise result["error"]
    return outcome, result.get("value"), state


@pytest.mark.parametrize("engine_name", engine_params())
def test_breakpoint_step_registers_and_memory(engine_name):
    def script(c, server):
        supported = c.ask("qSupported:multiprocess+;swbreak+;xmlRegisters=i386")
        assert "PacketSize=4000" in supported and "qXfer:features:read+" in supported
        assert c.ask("QStartNoAckMode") == "OK"
        c.ack = False
        xml, offset = "", 0
        while True:                                     # target.xml in small pieces
            reply = c.ask(f"qXfer:features:read:target.xml:{offset:x},200")
            xml += reply[1:]
            offset += len(reply) - 1
            if reply[0] == "l":
                break
        assert xml == TARGET_XML
        assert c.ask("qXfer:features:read:other.xml:0,100") == "E00"
        assert c.ask("?").startswith("T05")
        assert c.ask("Hg0") == "OK" and c.ask("qC") == "QC1" and c.ask("qAttached") == "1"
        assert c.ask("qfThreadInfo") == "m1" and c.ask("qsThreadInfo") == "l"
        assert c.ask("vCont?") == "" and c.ask("vMustReplyEmpty") == ""
        registers = c.ask("g")
        assert len(registers) == G_PACKET_HEX
        assert c.register(RIP) == ENTRY
        assert bytes.fromhex(c.ask(f"m{ENTRY:x},5")) == COUNT_LOOP[:5]
        assert c.ask("m40000000,4") == "E14"                       # beyond the mapped 4 MiB
        assert c.ask(f"Z0,{LOOP_BODY:x},1") == "OK"
        assert c.ask("c").startswith("T05")
        assert c.register(RIP) == LOOP_BODY and c.register(RBX) == 0
        assert bytes.fromhex(c.ask(f"m{LOOP_BODY:x},3")) == COUNT_LOOP[5:8]     # no int3 shows
        assert c.ask("s").startswith("T05")                        # inc rbx
        assert c.register(RIP) == LOOP_BODY + 3 and c.register(RBX) == 1
        assert c.ask("c").startswith("T05")                        # the second pass
        assert c.register(RBX) == 1
        assert c.set_register(RBX, 100) == "OK"
        assert c.ask(f"z0,{LOOP_BODY:x},1") == "OK"
        assert c.ask(f"M{ENTRY + 0x20:x},2:abcd") == "OK"
        assert c.ask(f"m{ENTRY + 0x20:x},2") == "abcd"
        assert c.ask("Z2,1000,4") == ""                            # watchpoints: not supported
        return c.ask("c")

    outcome, reply, state = session(engine_name, COUNT_LOOP, script)
    assert reply == "W07"
    assert outcome.reason == DEBUG_EXIT and outcome.status == 7
    assert state.regs["rbx"] == 104                                 # 100 + the last four passes


@pytest.mark.parametrize("engine_name", engine_params())
def test_ctrl_c_stops_a_spinning_guest(engine_name):
    def script(c, server):
        c.send("c")
        time.sleep(0.3)
        c.sock.sendall(b"\x03")
        stop = c.receive()
        rip = c.register(RIP)
        assert c.set_register(RBX, 1) == "OK"                      # lets the guest leave its loop
        return stop, rip, c.ask("c")

    outcome, (stop, rip, final), _ = session(engine_name, SPIN_UNTIL_RBX, script)
    assert stop.startswith("T02")
    assert ENTRY <= rip < ENTRY + 5
    assert final == "W03" and outcome.status == 3


@pytest.mark.parametrize("engine_name", engine_params())
def test_attach_to_a_running_guest_then_detach(engine_name):
    def script(c, server):
        stop = c.ask("?")                                          # the guest was stopped on attach
        rip = c.register(RIP)
        assert c.set_register(RBX, 1) == "OK"
        return stop, rip, c.ask("D")

    outcome, (stop, rip, detached), _ = session(engine_name, SPIN_UNTIL_RBX, script, wait=False,
                                                start_client_after=0.3)
    assert stop.startswith("T05") and ENTRY <= rip < ENTRY + 5 and detached == "OK"
    assert outcome.reason == DEBUG_EXIT and outcome.status == 3


def test_malformed_input_and_retransmission(requires_kvm):
    def script(c, server):
        c.sock.sendall(b"$g#00")                                   # bad checksum
        assert c._take(1) == b"-"
        c.sock.sendall(b"garbage bytes")                           # outside a packet: ignored
        c.sock.sendall(b"$" + b"9" * (MAX_PACKET + 5) + b"#00")    # overlong
        assert c._take(1) == b"-"
        c.send("qC")
        assert c.receive(ack=False) == "QC1"
        c.sock.sendall(b"-")                                       # ask for the reply again
        assert c.receive() == "QC1"
        assert c.ask("X100000,0:") == ""                           # binary writes: not supported
        assert c.ask("m100000") == "E16"                           # malformed arguments
        assert c.ask("p999") == "E16"
        # Signs, and numbers past the 64-bit address space, are refused, never wrapped (issue 20).
        assert c.ask("p-1") == "E16"
        assert c.ask("m10000000000000000,1") == "E16"
        assert c.ask("mffffffffffffffff,2") == "E16"
        assert c.ask("Z0,-1000,1") == "E16"
        assert c.ask("qXfer:features:read:target.xml:-1,10") == "E16"
        assert c.ask("qXfer:features:read:target.xml:0,10").startswith("m<?xml")
        return c.ask("c")

    outcome, reply, _ = session("kvm", COUNT_LOOP, script)
    assert reply == "W07" and outcome.status == 7


def test_second_client_is_refused(requires_kvm):
    def script(c, server):
        assert c.ask("qC") == "QC1"
        second = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        assert second.recv(100) == b""                             # closed at once
        second.close()
        assert c.ask("?").startswith("T05")                        # the first one is unaffected
        return c.ask("c")

    outcome, reply, _ = session("kvm", COUNT_LOOP, script)
    assert reply == "W07" and outcome.status == 7


@pytest.mark.parametrize("engine_name", engine_params())
def test_disconnect_mid_session_lets_the_guest_finish(engine_name):
    def script(c, server):
        assert c.ask(f"Z0,{LOOP_BODY:x},1") == "OK"
        assert c.ask("c").startswith("T05")
        # gone without a word: the stub drops the breakpoints and the guest runs to its end

    outcome, _, state = session(engine_name, COUNT_LOOP, script)
    assert outcome.reason == DEBUG_EXIT and outcome.status == 7 and state.regs["rbx"] == 5


@pytest.mark.parametrize("engine_name", engine_params())
def test_sigint_to_the_vmm_ends_the_session(engine_name):
    def script(c, server):
        c.send("c")
        time.sleep(0.3)                                            # the guest spins in serve()
        os.kill(os.getpid(), signal.SIGINT)
        return c.receive()

    outcome, reply, _ = session(engine_name, SPIN_UNTIL_RBX, script)
    assert reply == "X02" and outcome.reason == INTERRUPTED


def test_kill_ends_the_vm(requires_kvm):
    def script(c, server):
        c.send("k")

    outcome, _, _ = session("kvm", SPIN_UNTIL_RBX, script)
    assert outcome.reason == INTERRUPTED and "killed" in outcome.detail


@pytest.mark.parametrize("engine_name", engine_params())
def test_a_crash_stops_for_inspection_then_ends(engine_name):
    def script(c, server):
        stop = c.ask("c")
        rip = c.register(RIP)
        return stop, rip, c.ask("c")

    outcome, (stop, rip, final), _ = session(engine_name, b"\x90\x0f\x0b", script)   # nop ; ud2 (no IDT)
    assert stop.startswith("T0b") and final == "X0b"
    assert outcome.reason == SHUTDOWN
    if engine_name == "unicorn" or kvm_features.REGISTERS_AFTER_SHUTDOWN not in KvmEngine.missing_features():
        assert rip == ENTRY + 1             # (kvm_amd resets the vCPU on a triple fault: rip is lost)


def test_more_breakpoints_than_debug_registers(requires_kvm):
    """Five breakpoints on KVM: continuing single-steps and compares RIP."""
    def script(c, server):
        for address in (LOOP_BODY, ENTRY + 0x40, ENTRY + 0x41, ENTRY + 0x42, ENTRY + 0x43):
            assert c.ask(f"Z0,{address:x},1") == "OK"
        hits = []
        for _ in range(5):
            assert c.ask("c").startswith("T05")
            hits.append((c.register(RIP), c.register(RBX)))
        return hits, c.ask("c")

    outcome, (hits, final), _ = session("kvm", COUNT_LOOP, script)
    assert hits == [(LOOP_BODY, n) for n in range(5)]
    assert final == "W07"


# --- the real gdb against the guest kernel --------------------------------------------------------------------
def run_gdb(engine_name, program, commands, kernel_path):
    gdb = shutil.which("gdb")
    if gdb is None:
        pytest.skip("gdb not installed")
    config = MachineConfig(kernel=kernel_path, initrd=f"guest/build/programs/{program}", accel=engine_name,
                           serial="none")
    with Machine(config) as vm:
        server = GdbServer(DebugTarget(vm.engine.debug()), ("127.0.0.1", 0), wait=True, linger=5)
        args = [gdb, "-nx", "-batch", "-ex", "set pagination off",
                "-ex", f"target remote 127.0.0.1:{server.port}"]
        for command in commands:
            args += ["-ex", command]
        process = subprocess.Popen(args + [kernel_path], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True)
        try:
            outcome = server.serve()
            output = process.communicate(timeout=60)[0]
        finally:
            if process.poll() is None:
                process.kill()
        return outcome, output, bytes(vm.serial.captured)


@pytest.mark.parametrize("engine_name", engine_params(kvm_features=(kvm_features.BREAKPOINTS,)))
def test_gdb_breaks_steps_reads_and_continues(engine_name, kernel_path):
    outcome, output, serial = run_gdb(engine_name, "hello", [
        "break serial_write", "continue", "info registers rip", "stepi", "info registers rip",
        "print/x (unsigned long)tsc_khz", "x/2i $pc", "bt 2", "delete", "continue"], kernel_path)
    hit = re.search(r"Breakpoint 1, (0x[0-9a-f]+) in serial_write \(\)", output)
    assert hit, output
    address = int(hit.group(1), 16)
    assert re.search(rf"rip +{address:#x} +{address:#x} <serial_write>", output), output
    stepped = re.search(r"rip +(0x[0-9a-f]+) +0x[0-9a-f]+ <serial_write\+(\d+)>", output)
    assert stepped and int(stepped.group(1), 16) == address + int(stepped.group(2)) > address, output
    assert re.search(r"\$1 = 0x[0-9a-f]+", output) and f"=> {int(stepped.group(1), 16):#x} <serial_write+" in output
    assert "in console_write ()" in output, output
    assert "[Inferior 1 (Remote target) exited normally]" in output, output
    assert outcome.reason == DEBUG_EXIT and outcome.status == 0
    assert serial == b"hello from ring 3\n"


def test_gdb_sees_the_exit_status(requires_kvm, kernel_path):
    outcome, output, _ = run_gdb("kvm", "exitcode", ["break exec_file", "continue", "continue"], kernel_path)
    assert re.search(r"Breakpoint 1, 0x[0-9a-f]+ in exec_file \(\)", output), output
    assert "[Inferior 1 (Remote target) exited with code 052]" in output, output
    assert outcome.status == 42


@pytest.mark.parametrize("engine_name", engine_params(kvm_features=(kvm_features.BREAKPOINTS, kvm_features.USER_DEBUG)))
def test_gdb_breaks_and_steps_in_user_mode(engine_name, kernel_path):
    """A breakpoint in the ring-3 program (its own symbols), then a step there. kvm_pvm runs
    ring 3 natively, where neither the debug registers nor single-steps fire (skipped there,
    saying so). The program's breakpoint is set once the kernel has mapped the program and
    switched to its page tables (at enter_user): an int3 can only go where they say."""
    outcome, output, _ = run_gdb(engine_name, "hello", [
        "break enter_user", "continue", "add-symbol-file guest/build/programs/hello", "break main",
        "continue", "info registers cs", "stepi", "delete", "continue"], kernel_path)
    assert re.search(r"Breakpoint 2, 0x[0-9a-f]+ in main \(\)", output), output
    assert re.search(r"cs +0x33 ", output), output                 # ring 3
    assert "in main ()" in output.split("Breakpoint 2,")[1], output
    assert "[Inferior 1 (Remote target) exited normally]" in output, output
    assert outcome.status == 0


@pytest.mark.kvm_feature(kvm_features.USER_DEBUG)
def test_ctrl_c_stops_user_code_and_steps_there_on_kvm(kernel_path):
    """Single-steps in ring 3 through the stub, without breakpoints (which a KVM nested in
    QEMU's TCG lacks): `compute` runs in ring 3 nearly all the time, so a Ctrl-C stops it
    there (retried if it lands in the kernel); each step in the program then moves RIP by one
    instruction. KVM only: unicorn takes the timer ticks that piled up while the guest was
    stopped at each step (test_gdb_breaks_and_steps_in_user_mode steps there)."""
    engine_name = "kvm"
    from vmm.debug import disasm
    config = MachineConfig(kernel=kernel_path, initrd="guest/build/programs/compute", program_args=["64"],
                           mem_size="128M", accel=engine_name, serial="none")
    result = {}
    with Machine(config) as vm:
        server = GdbServer(DebugTarget(vm.engine.debug()), ("127.0.0.1", 0), wait=True, linger=2)

        def drive():
            c = None
            try:
                c = Client(server.port)
                c.ask("?")
                for _ in range(200):                    # (filling its memory, it spends time in the kernel)
                    if c.register(CS) == USER_CS and c.register(RIP) < PROGRAM_TEXT_END:
                        break
                    c.send("c")
                    time.sleep(0.05)
                    c.sock.sendall(b"\x03")
                    assert c.receive().startswith("T02")
                assert c.register(CS) == USER_CS and c.register(RIP) < PROGRAM_TEXT_END
                steps = []
                for _ in range(40):
                    rip = c.register(RIP)
                    code = bytes.fromhex(c.ask(f"m{rip:x},{disasm.MAX_INSN:x}"))
                    size, text = disasm.decode_one(code, rip, 64)
                    assert c.ask("s").startswith("T05")
                    steps.append((rip, size, text, c.register(RIP), c.register(CS)))
                result["steps"] = steps
            except BaseException as error:              # noqa: BLE001 - reported below
                result["error"] = error
            finally:
                if c is not None:
                    c.sock.sendall(frame(b"k"))         # ends the VM whatever happened
                    c.close()

        thread = threading.Thread(target=drive, daemon=True)
        thread.start()
        outcome = server.serve()
        thread.join(TIMEOUT)
    if "error" in result:
        raise result["error"]
    assert outcome.reason == INTERRUPTED
    # A step may end in a fault's handler (KVM_GUESTDBG_BLOCKIRQ keeps interrupts out where
    # KVM has it). Most stay in the program.
    in_user_mode = [step for step in result["steps"] if step[4] == USER_CS]
    assert len(in_user_mode) >= 20, [(hex(r), t, hex(a), cs) for r, _, t, a, cs in result["steps"]]
    for rip, size, text, after, _ in in_user_mode:
        assert after != rip, (hex(rip), text)
        if not text.startswith(("j", "call", "ret", "loop", "syscall", "rep")):
            assert after == rip + size, (hex(rip), text, hex(after))


@pytest.mark.parametrize("engine_name", engine_params())
def test_step_over_writes_that_exit_is_exact(engine_name):
    """kvm_pvm loses the step exit after an OUT or an MMIO store; the target stops the run
    right after the write instead. Either way a step is one instruction."""
    code = (b"\xb0\x41"                  # mov al, 0x41
            + b"\xe6\x80"                # out 0x80, al
            + b"\x90"                    # nop
            + b"\xe4\x80"                # in al, 0x80
            + b"\x90"                    # nop
            + b"\xb0\x07\xe7\xf4")       # mov al, 7 ; out 0xf4, eax

    def script(c, server):
        rips = []
        for _ in range(5):
            assert c.ask("s").startswith("T05")
            rips.append(c.register(RIP))
        return rips, c.ask("c")

    outcome, (rips, final), _ = session(engine_name, code, script, port_device=True)
    assert rips == [ENTRY + 2, ENTRY + 4, ENTRY + 5, ENTRY + 7, ENTRY + 8]
    assert final == "W07"


def test_a_vmm_stop_ends_a_stopped_session(requires_kvm):
    """Machine.stop() (the console's escape, SIGTERM) while gdb holds the guest stopped."""
    def script(c, server):
        assert c.ask("?").startswith("T05")
        server.target.debug.engine.control.request_stop(Outcome(INTERRUPTED, status=143, detail="SIGTERM"))
        return c.receive()

    outcome, reply, _ = session("kvm", COUNT_LOOP, script)
    assert reply == "X0f" and outcome.status == 143                # SIGTERM
