"""Seeing inside the guest: crash reports, tracing, exit statistics and a gdb stub.

    report.py     format_cpu_state(), format_crash_report(): registers, code around RIP,
                  the stack and the recent exits, read without ever raising
    disasm.py     capstone 5 (imported on first use), 16/32/64-bit, resync before RIP
    (the page walk itself is vmm/arch/x86/paging.py, shared with the software engine)
    exits.py      exit observers fed by bus wrappers: ExitRing (recent exits),
                  ExitTraceWriter (--trace-exits), ExitHistogram (--stats)
    trace.py      --trace: one line per instruction (KVM single-step, unicorn code hook)
    target.py     DebugTarget: registers, memory, breakpoints, step, resume, interrupt,
                  for KvmEngine (KVM_SET_GUEST_DEBUG) and UnicornEngine (code hooks)
    gdbstub.py    the GDB remote serial protocol over a loopback TCP socket
    session.py    DebugOptions + DebugSession: the calls the machine makes to use all this

Nothing here runs unless asked for: with default options the machine's exit path is the
same as without this package.
"""
