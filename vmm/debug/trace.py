"""--trace FILE: one line per executed guest instruction (address, bytes, disassembly).

    tracer = InstructionTracer.open("trace.txt", limit=1_000_000)
    attach_tracer(engine, tracer)                # after set_state, before run()
    outcome = engine.run(timeout)
    tracer.close(outcome)

Each line is written just before its instruction executes; a rep-prefixed instruction
is written once, however many iterations it makes (KVM steps it as one instruction, unicorn
calls its code hook per iteration):

    0x0000000000100000: fa                                     cli

Each engine's debug interface feeds the tracer (EngineDebug.trace):
  - KVM (engines/kvm_debug.py): single-stepping, one KVM_EXIT_DEBUG per instruction, about
    10 k instructions/s here (a bare single-step loop does 30 k/s). On a host whose KVM is
    kvm_pvm (this one) only ring-0 code is stepped: ring-3 code runs natively and unseen,
    and the first instruction of an exception handler runs before the next step exit. A
    jump in the trace that no branch explains is marked with a `# gap` line. kvm_pvm also
    loses the step exit after a write that exits to the VMM; the instruction that then
    runs unseen is recovered from the code, so those are not gaps.
  - unicorn (engines/unicorn_debug.py): a code hook calls on_instruction() before every
    instruction, in every ring.

At the limit (default 1,000,000 lines) the tracer writes a last line saying so and
tracing stops; the guest goes on at full speed (the disk never fills, the run's outcome
is unchanged).
"""
from . import disasm

DEFAULT_LIMIT = 1_000_000

# Mnemonics after which the next address is not simply the next instruction.
_BRANCHES = frozenset("""
    jmp ljmp call lcall ret retf retfq iret iretd iretq int int1 int3 into syscall sysret sysretq
    sysenter sysexit sysexitq loop loope loopne jrcxz jecxz jcxz hlt ud2 vmcall vmmcall
""".split())


def is_branch(mnemonic: str) -> bool:
    return mnemonic in _BRANCHES or mnemonic.startswith(("j", "call"))


def direct_target(operand: str):
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
    def open(cls, path: str, limit: int = DEFAULT_LIMIT, on_error=None) -> "InstructionTracer":
        """A tracer writing to `path`; a write error goes to `on_error(text)` (user_files.OutputText)."""
        from ..user_files import OutputText
        return cls(OutputText(path, "instruction trace", on_error), limit)

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
        self._branch = not size or self._repeat or is_branch(mnemonic)
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


def attach_tracer(engine, tracer: InstructionTracer):
    """Start feeding `tracer` from `engine`'s debug interface (engine.debug().trace: KVM
    single-steps, unicorn hooks every instruction); returns a handle whose detach() stops
    it early."""
    return engine.debug().trace(tracer)
