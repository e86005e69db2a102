"""--trace FILE: one line per executed guest instruction (address, bytes, disassembly).

    tracer = InstructionTracer.open("trace.txt", limit=1_000_000)
    attach_tracer(engine, memory, tracer)        # after set_state, before run()
    outcome = engine.run(timeout)
    tracer.close(outcome)

Each line is written just before its instruction executes; a rep-prefixed instruction
is written once, however many iterations it makes (KVM steps it as one instruction, unicorn
calls its code hook per iteration):

    0x0000000000100000: fa                                     cli

How each engine feeds the tracer:
  - KVM: single-stepping (KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_SINGLESTEP): one
    KVM_EXIT_DEBUG per instruction; its linear RIP is translated through the guest's page
    tables (vmm/arch/x86/paging.py) and disassembled in the mode CS says. About 10 k
    instructions/s here (a bare single-step loop does 30 k/s). On a host whose KVM is kvm_pvm (this one) only ring-0 code is stepped:
    ring-3 code runs natively and unseen, and the first instruction of an exception handler
    runs before the next step exit. A jump in the trace that no branch explains is marked
    with a `# gap` line. kvm_pvm also loses the step exit after a write that exits to the
    VMM (OUT, MMIO store); the instruction that then runs unseen is recovered from the
    code (KvmTracer._unseen), so those are not gaps.
  - unicorn: a UC_HOOK_CODE over all addresses calls on_instruction() before every
    instruction, in every ring.

At the limit (default 1,000,000 lines) the tracer writes a last line saying so and
tracing stops; the guest goes on at full speed (the disk never fills, the run's outcome
is unchanged).
"""
from ..kvm import structs as ks
from ..arch.x86 import paging as pagewalk
from . import disasm

DEFAULT_LIMIT = 1_000_000

# Mnemonics after which the next address is not simply the next instruction.
_BRANCHES = frozenset("""
    jmp ljmp call lcall ret retf retfq iret iretd iretq int int1 int3 into syscall sysret sysretq
    sysenter sysexit sysexitq loop loope loopne jrcxz jecxz jcxz hlt ud2 vmcall vmmcall
""".split())


MAX_UNSEEN = 3              # instructions the KVM tracer may fill in between two step exits


def _is_branch(mnemonic: str) -> bool:
    return mnemonic in _BRANCHES or mnemonic.startswith(("j", "call"))


def _direct_target(operand: str):
    """The target of `jne 0x104460`-style branches, else None."""
    try:
        return int(operand, 16) if operand.startswith("0x") else None
    except ValueError:
        return None


class InstructionTracer:
    """Formats and writes instruction lines; on_instruction() returns False once the limit
    is reached (the engine should stop calling it)."""

    def __init__(self, out, limit: int = DEFAULT_LIMIT):
        self._out = out
        self.limit = limit
        self.count = 0
        self.active = limit > 0
        self._bits = None
        self._next = None               # where fall-through would go after the last instruction
        self._last = None
        self._branch = True
        self._repeat = False

    @classmethod
    def open(cls, path: str, limit: int = DEFAULT_LIMIT) -> "InstructionTracer":
        return cls(open(path, "w", buffering=1 << 16), limit)

    def on_instruction(self, address: int, code: bytes, bits: int) -> bool:
        """Log the instruction at linear `address` (`code`: up to 15 bytes from there, fewer
        if the rest is unmapped), decoded as `bits`-bit code."""
        if not self.active:
            return False
        if address == self._last and self._repeat:
            return True                 # another iteration of a rep-prefixed instruction
        out = self._out
        if bits != self._bits:
            out.write(f"# {bits}-bit code\n")
            self._bits = bits
        if self.is_gap(address):
            out.write("# gap: execution went on elsewhere without a trace entry "
                      "(exception or interrupt entry, or code the engine does not step)\n")
        size, text = disasm.decode_one(code, address, bits) if code else (0, "<unmapped>")
        out.write(disasm.format_line(address, code[:size] if size else code[:disasm.MAX_INSN], text, "") + "\n")
        self._last = address
        self._next = address + size
        mnemonic = text.split(" ", 1)[0]
        self._repeat = mnemonic.startswith("rep")
        self._branch = not size or self._repeat or _is_branch(mnemonic)
        self.count += 1
        if self.count >= self.limit:
            self.active = False
            out.write(f"# trace limit of {self.limit} instructions reached: tracing stopped, the guest went on\n")
            return False
        return True

    def is_gap(self, address: int) -> bool:
        """Would `address` be a jump that no branch explains, after the last instruction?"""
        return not self._branch and address != self._next and address != self._last

    @property
    def next_address(self):
        """Where the last instruction falls through to (None before the first)."""
        return self._next

    def note(self, text: str) -> None:
        if self._out is not None:
            self._out.write(f"# {text}\n")

    def close(self, outcome=None) -> None:
        if self._out is None:
            return
        if outcome is not None:
            self._out.write(f"# end: {outcome.reason}: {outcome.detail}\n")
        self._out.close()
        self._out = None


def attach_tracer(engine, memory, tracer: InstructionTracer):
    """Start feeding `tracer` from `engine` (KvmEngine or UnicornEngine); returns an object
    whose detach() stops it early."""
    if engine.name == "kvm":
        return KvmTracer(engine, memory, tracer)
    if engine.name == "unicorn":
        return UnicornTracer(engine, tracer)
    raise ValueError(f"no instruction tracer for engine {engine.name!r}")


class KvmTracer:
    """The KvmEngine debug hook for tracing: single-step, log, go on."""

    def __init__(self, engine, memory, tracer: InstructionTracer):
        self.engine = engine
        self.memory = memory
        self.tracer = tracer
        self._attached = True
        state = engine.get_state()
        self._log(pagewalk.linear_address(state, state.cs, state.rip))   # the first instruction
        engine.set_debug_hook(self)
        engine.set_guest_debug(ks.KVM_GUESTDBG_ENABLE | ks.KVM_GUESTDBG_SINGLESTEP)

    def _log(self, pc: int) -> bool:
        cr0, cr3, cr4, efer, bits = self.engine.code_context()
        paging = pagewalk.Paging(cr0, cr3, cr4, efer)
        tracer = self.tracer
        if tracer.is_gap(pc):
            for address, code in self._unseen(paging, bits, tracer.next_address, pc):
                if not tracer.on_instruction(address, code, bits):
                    return False
        code, _ = pagewalk.read(paging, self.memory, pc, disasm.MAX_INSN)
        return tracer.on_instruction(pc, code, bits)

    def _unseen(self, paging, bits: int, start: int, pc: int) -> list:
        """The instructions that ran without a step exit of their own: KVM here (kvm_pvm)
        loses the step exit after a write that exits to the VMM (OUT, MMIO store), so the
        next instruction runs unseen. [(address, bytes)] from `start` if straight-line code
        from there (at most MAX_UNSEEN instructions, the last one possibly a direct branch)
        leads to `pc`; else [] (a real gap: an exception or interrupt entry)."""
        chain = []
        address = start
        for _ in range(MAX_UNSEEN):
            code, _ = pagewalk.read(paging, self.memory, address, disasm.MAX_INSN)
            size, text = disasm.decode_one(code, address, bits) if code else (0, "")
            if not size:
                return []
            chain.append((address, code[:size]))
            address += size
            mnemonic, _, operand = text.partition(" ")
            if address == pc or (_is_branch(mnemonic) and _direct_target(operand) == pc):
                return chain
            if mnemonic in ("ret", "retq") and not operand and self._returned_to(paging, bits, pc):
                return chain
            if _is_branch(mnemonic):
                return []
        return []

    def _returned_to(self, paging, bits: int, pc: int) -> bool:
        """Did a `ret` just pop `pc`? (The slot below the stack pointer holds it.)"""
        state = self.engine.get_state()
        width = 8 if bits == 64 else 4
        top = pagewalk.linear_address(state, state.ss, state.regs["rsp"] - width)
        data, _ = pagewalk.read(paging, self.memory, top, width)
        return len(data) == width and int.from_bytes(data, "little") == pc

    def on_debug_exit(self, exception: int, pc: int, dr6: int):
        if not self._log(pc):
            self.detach()
        return None

    def on_kick(self, halted: bool):
        return None

    def detach(self) -> None:
        if self._attached:
            self._attached = False
            self.engine.set_debug_hook(None)


class UnicornTracer:
    """A UC_HOOK_CODE over every instruction, through the engine's debug port."""

    def __init__(self, engine, tracer: InstructionTracer):
        from .target import unicorn_port
        self.tracer = tracer
        self.control = engine.control
        self.port = unicorn_port(engine)
        fetch = getattr(self.port, "fetch_with_bits", None)
        if fetch is None:
            def fetch(address, size, port=self.port):
                return port.fetch(address, size), port.code_bits()
        self._fetch = fetch
        self._handle = self.port.add_code_hook(self.on_code, 1, 0)

    def on_code(self, address: int, size: int) -> None:
        if self.control.stop is not None:
            self.port.stop_before(None)        # a device asked to stop: KVM would not go on
            return
        code, bits = self._fetch(address, size)
        if not self.tracer.on_instruction(address, code, bits):
            self.detach()

    def detach(self) -> None:
        if self._handle is not None:
            self.port.remove_code_hook(self._handle)
            self._handle = None
