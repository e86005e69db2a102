"""Seeing inside the guest: crash reports, tracing, exit statistics and a gdb stub.

Everything here works through an engine's debug interface (engine.debug(), the contract in
engines/base.py; engines/kvm_debug.py and engines/unicorn_debug.py implement it), never on
an engine's internals, and never asks which engine it has.

    report.py         format_cpu_state(), format_crash_report(): registers, code around
                      RIP, the stack and the recent exits, read without ever raising
    disasm.py         capstone 5 (imported on first use), 16/32/64-bit, resync before RIP
    exits.py          exit observers fed by bus wrappers: ExitRing (recent exits),
                      ExitTraceWriter (--trace-exits), ExitHistogram (--stats)
    trace.py          --trace: one line per instruction, fed by the debug interface
    target.py         DebugTarget: breakpoints, step, resume, interrupt for the gdb stub
    gdbstub.py        the GDB remote serial protocol server over a loopback TCP socket
    gdb_packets.py    its packet framing and one client's connection
    gdb_registers.py  its register layout (the `g` packet, target.xml)
    session.py        DebugOptions + DebugSession: the calls the machine makes to use all this

The page walk is arch/x86/paging.py, shared with the software engine. Nothing here runs
unless asked for: with default options the machine's exit path is the same as without
this package.
"""
