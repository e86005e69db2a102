"""The debugging options of one VM run, and what the machine calls to apply them.

Everything in vmm/debug is optional; this module is the one place the machine talks to:

    debug = DebugSession(DebugOptions(trace="t.txt", stats=True, gdb="127.0.0.1:1234"))
    ports, mmio = debug.wrap_buses(ports, mmio)         # before the engine is created
    engine = Engine(memory, ports, mmio, control, cpuid)
    engine.set_state(boot_state)
    debug.attach(engine)                                # after set_state, before running
    outcome = debug.run(engine, timeout)                # engine.run(), or the gdb session
    report = debug.crash_report(engine.debug())
    debug.close(outcome)                                # trace files get the outcome line

With default options every call is a no-op (wrap_buses returns the buses themselves,
run() is engine.run()), so the exit path costs exactly what it costs without vmm/debug,
except for the ring of recent exits when `recent_exits` > 0 (one extra call and a few list
stores per port or MMIO exit, about 2% of a KVM exit here).
"""
from ..records import record

from ..errors import UsageError

DEFAULT_TRACE_LIMIT = 1_000_000


@record
class DebugOptions:
    trace: str | None = None            # --trace FILE: every instruction
    trace_limit: int = DEFAULT_TRACE_LIMIT  # --trace-limit N (instruction lines and exit lines)
    trace_exits: str | None = None      # --trace-exits FILE: every VM exit
    stats: bool = False                 # --stats: a histogram of exits by port/address
    recent_exits: int = 0               # exits kept for crash reports (0: none)
    gdb: str | None = None              # --gdb HOST:PORT (loopback only)
    gdb_wait: bool = False              # --gdb-wait: do not start the guest before gdb says so

    def validate(self) -> None:
        """UsageError (one line) for options that cannot work together."""
        if self.trace_limit <= 0:
            raise UsageError("--trace-limit must be at least 1")
        if self.recent_exits < 0:
            raise UsageError("the number of recent exits kept must not be negative")
        for option, value in (("--trace", self.trace), ("--trace-exits", self.trace_exits), ("--gdb", self.gdb)):
            if value is not None and not value:
                raise UsageError(f"{option} is empty: it needs a " + ("HOST:PORT" if option == "--gdb" else "FILE"))
        if self.gdb_wait and self.gdb is None:
            raise UsageError("--gdb-wait needs --gdb HOST:PORT")
        if self.gdb is not None and self.trace is not None:
            raise UsageError("--trace and --gdb cannot be used together (both drive the vCPU's debug hook)")
        if self.gdb is not None:
            from .gdbstub import parse_address
            parse_address(self.gdb)

    @property
    def active(self) -> bool:
        return bool(self.trace or self.trace_exits or self.stats or self.recent_exits or self.gdb)


class DebugSession:
    def __init__(self, options: DebugOptions | None = None):
        self.options = options or DebugOptions()
        self.options.validate()
        self.ring = self.histogram = None
        if self.options.recent_exits or self.options.stats:
            from . import exits         # (only when asked for: start-up is benchmarked)
            self.ring = exits.ExitRing(self.options.recent_exits) if self.options.recent_exits else None
            self.histogram = exits.ExitHistogram() if self.options.stats else None
        self.exit_trace = None
        self.tracer = None
        self.trace_feed = None              # owns the engine's trace callback until close()
        self.gdb_server = None
        self._observer = None
        self.on_output_error = None         # on_output_error(text): a trace file cannot be written
        self.output_error = None            # the first such error, for the run's result

    # --- before the engine exists ------------------------------------------------------------------
    def wrap_buses(self, ports, mmio):
        """The buses to hand the engine: the same ones unless exits are observed."""
        if not self.options.active:
            return ports, mmio
        from . import exits
        if self.options.trace_exits:
            self.exit_trace = exits.ExitTraceWriter.open(self.options.trace_exits, self.options.trace_limit,
                                                         self._output_failed)
        self._observer = exits.combine([self.ring, self.histogram, self.exit_trace])
        if self._observer is None:
            return ports, mmio
        return (exits.ObservedPortBus(ports, self._observer.access),
                exits.ObservedMmioBus(mmio, self._observer.access))

    # --- once the engine has its boot state ---------------------------------------------------------
    def attach(self, engine) -> None:
        """Through the engine's debug interface: non-I/O exits to the observers (engines
        that have such exits), the instruction tracer, and the gdb stub's listening socket
        (bound now, so that the port is known and a bad address fails before the guest starts)."""
        if self._observer is not None:
            engine.debug().observe_exits(self._observer)
        if self.options.trace:
            from .trace import InstructionTracer, attach_tracer
            self.tracer = InstructionTracer.open(self.options.trace, self.options.trace_limit, self._output_failed)
            self.trace_feed = attach_tracer(engine, self.tracer)
        if self.options.gdb:
            from .gdbstub import GdbServer, parse_address
            from .target import DebugTarget
            self.gdb_server = GdbServer(DebugTarget(engine.debug()), parse_address(self.options.gdb),
                                        wait=self.options.gdb_wait)

    def _output_failed(self, text: str) -> None:
        if self.output_error is None:
            self.output_error = text
            if self.on_output_error is not None:
                self.on_output_error(text)

    def listening(self) -> str | None:
        """"HOST:PORT" the gdb stub listens on, for the CLI to print; None without --gdb."""
        if self.gdb_server is None:
            return None
        host, port = self.gdb_server.address
        return f"{host}:{port}"

    # --- running -------------------------------------------------------------------------------------
    def run(self, engine, timeout: float | None):
        """engine.run(timeout); under --gdb, the debugging session instead, which `timeout`
        bounds as a whole (waiting for gdb and time stopped at breakpoints included): at the
        deadline the VMM asks the run to stop, as Machine.stop() does, and gdb sees the VM end."""
        if self.gdb_server is None:
            return engine.run(timeout)
        if timeout is None:
            return self.gdb_server.serve()
        import threading
        from ..outcome import TIMEOUT, Outcome
        deadline = threading.Timer(timeout, engine.control.request_stop,
                                   (Outcome(TIMEOUT, detail=f"--timeout of {timeout:g} s passed while debugging"),))
        deadline.daemon = True
        deadline.start()
        try:
            return self.gdb_server.serve()
        finally:
            deadline.cancel()

    # --- after the run -------------------------------------------------------------------------------
    def crash_report(self, view) -> str:
        """The crash report of the vCPU `view` shows (an engine's debug interface)."""
        from .report import format_crash_report
        return format_crash_report(view, self.ring)

    def histogram_text(self, ports=None, mmio=None, top: int = 20) -> str:
        return self.histogram.format(ports, mmio, top) if self.histogram is not None else ""

    def histogram_dict(self) -> dict:
        return self.histogram.as_dict() if self.histogram is not None else {}

    def close(self, outcome=None) -> None:
        if self.trace_feed is not None:
            self.trace_feed.detach()
            self.trace_feed = None
        if self.tracer is not None:
            self.tracer.close(outcome)
            self.tracer = None
        if self.exit_trace is not None:
            self.exit_trace.close(outcome)
            self.exit_trace = None
        if self.gdb_server is not None:
            self.gdb_server.close()


__all__ = ["DebugOptions", "DebugSession"]
