"""The --strace port: the guest kernel writes the physical address of its report record
(guest/kernel/syscall/strace.c) to layout.STRACE_PORT at each system call's entry and exit,
when a signal is delivered (args: si_code, si_addr, si_pid, si_uid), and when the program ends.
The record:

    u32 kind, u32 pid, u64 nr, u64 args[6], i64 ret, u64 cr3     (80 bytes, little-endian)

User memory is read through the record's CR3 with the one x86 page walk, read-only, and only
in the tiny kernel's user range (guest/kernel/layout.h USER_MIN..USER_END): a pointer to the
kernel prints in hex, as strace shows an address the kernel refused. Lines go to `out` as strace
writes them ("+++ exited with 0 +++" last). Only `vmm run --strace` registers this device:
without it the kernel sends nothing and nothing here runs.
"""
import struct

from ..arch.x86 import paging as pagewalk
from ..arch.x86.cpu_state import CR0_PE, CR0_PG, CR4_PAE, EFER_LMA
from .abi import signal_name, syscall_name
from .decode import NEVER_RETURN, Call

RECORD = struct.Struct("<IIQ6QqQ")
USER_MIN, USER_END = 0x20_0000, 0x7FFF_FFFF_F000     # guest/kernel/layout.h
ENTRY, EXIT, SIGNAL, EXITED, KILLED = 1, 2, 3, 4, 5
SI_CODES = {0: "SI_USER", 0x80: "SI_KERNEL", -6: "SI_TKILL"}
FAULT_CODES = {"SIGSEGV": {1: "SEGV_MAPERR", 2: "SEGV_ACCERR"}, "SIGBUS": {1: "BUS_ADRALN", 2: "BUS_ADRERR"},
               "SIGILL": {2: "ILL_ILLOPN"}, "SIGFPE": {1: "FPE_INTDIV"}, "SIGTRAP": {1: "TRAP_BRKPT"}}


class StraceDevice:
    def __init__(self, memory, out):
        self.memory = memory
        self.out = out              # a text stream; flushed after each line
        self.call = None            # the call between its entry and exit

    def read(self, offset: int, size: int) -> int:
        return (1 << (8 * size)) - 1

    def write(self, offset: int, size: int, value: int) -> None:
        if size != 4 or not self.memory.contains(value, RECORD.size):
            return                  # not a record the kernel sent: ignore, as a port would
        kind, pid, nr, *rest = RECORD.unpack(self.memory.read(value, RECORD.size))
        args, ret, cr3 = rest[:6], rest[6], rest[7]
        paging = pagewalk.Paging(CR0_PG | CR0_PE, cr3, CR4_PAE, EFER_LMA)

        def user_memory(address: int, length: int):
            if address < USER_MIN or address + length > USER_END:
                return None
            data, error = pagewalk.read(paging, self.memory, address, length)
            return data if error is None else None
        if kind == ENTRY:
            name = syscall_name(nr)
            self.call = Call(name, args, user_memory)
            if name in NEVER_RETURN:
                self._line(self.call.finish(None))
                self.call = None
        elif kind == EXIT and self.call is not None:
            self._line(self.call.finish(ret))
            self.call = None
        elif kind == SIGNAL:
            self._line(self._signal_line(nr, *args[:4]))
        elif kind == EXITED:
            self._line(f"+++ exited with {nr} +++")
        elif kind == KILLED:
            self._line(f"+++ killed by {signal_name(nr)} +++")

    def _signal_line(self, sig: int, code: int, addr: int, pid: int, uid: int) -> str:
        """strace's line for a delivered signal: the fault's address, or who sent it."""
        name = signal_name(sig)
        code = code - (1 << 64) if code >> 63 else code
        code_name = FAULT_CODES.get(name, {}).get(code) if code > 0 else SI_CODES.get(code)
        if code > 0 and code != 0x80:
            where = f"{addr:#x}" if addr else "NULL"
            return f"--- {name} {{si_signo={name}, si_code={code_name or code}, si_addr={where}}} ---"
        if code in (0, -6):             # SI_USER, SI_TKILL
            return f"--- {name} {{si_signo={name}, si_code={code_name}, si_pid={pid}, si_uid={uid}}} ---"
        return f"--- {name} {{si_signo={name}, si_code={code_name or code}}} ---"

    def _line(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()
