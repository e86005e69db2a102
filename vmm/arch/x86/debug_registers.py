"""The debug registers (Intel SDM vol. 3B, 17.2): DR6 says why #DB came, DR7 enables the
breakpoints in DR0-DR3."""

BREAKPOINT_REGISTERS = 4        # DR0-DR3

DR6_B0 = 1 << 0                 # B0..B3: the condition of DRn was met
DR6_BREAKPOINTS = 0xF           # B0..B3 together
DR6_BS = 1 << 14                # single step

DR7_G0 = 1 << 1                 # global enable of DR0 (Gn = bit 2n + 1; R/Wn = LENn = 0: execution)
DR7_GE = 1 << 9                 # exact breakpoint detection (recommended with breakpoints)
DR7_FIXED = 1 << 10             # reads as 1
