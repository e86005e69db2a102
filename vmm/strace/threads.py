"""The thread calls strace formats by their operation: futex (the arguments an operation uses,
its name with _PRIVATE and |FUTEX_CLOCK_REALTIME) and clone (named arguments: child_stack,
flags with the exit signal, then parent_tid, tls, child_tidptr as the flags call for them)."""
from .abi import signal_name

FUTEX_OPS = {0: "FUTEX_WAIT", 1: "FUTEX_WAKE", 2: "FUTEX_FD", 3: "FUTEX_REQUEUE", 4: "FUTEX_CMP_REQUEUE",
             5: "FUTEX_WAKE_OP", 6: "FUTEX_LOCK_PI", 7: "FUTEX_UNLOCK_PI", 8: "FUTEX_TRYLOCK_PI",
             9: "FUTEX_WAIT_BITSET", 10: "FUTEX_WAKE_BITSET", 11: "FUTEX_WAIT_REQUEUE_PI",
             12: "FUTEX_CMP_REQUEUE_PI", 13: "FUTEX_LOCK_PI2"}
FUTEX_PRIVATE, FUTEX_CLOCK_REALTIME, BITSET_ANY = 128, 256, 0xFFFF_FFFF
REALTIME_OPS = (0, 9, 11, 13)           # those strace names with |FUTEX_CLOCK_REALTIME
WAKE_OPS = ("SET", "ADD", "OR", "ANDN", "XOR")
WAKE_CMPS = ("EQ", "NE", "LT", "LE", "GT", "GE")
# The arguments after (uaddr, op) each operation shows: val, timeout, val2, uaddr2, val3, bitset.
FUTEX_SHOWN = {0: ("val", "timeout"), 1: ("val",), 3: ("val", "val2", "uaddr2"),
               4: ("val", "val2", "uaddr2", "val3"), 5: ("val", "val2", "uaddr2", "val3"),
               9: ("val", "timeout", "bitset"), 10: ("val", "bitset")}
CLONE_FLAGS = [(0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
               (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"),
               (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"),
               (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"),
               (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"), (0x800000, "CLONE_UNTRACED"),
               (0x1000000, "CLONE_CHILD_SETTID")]


def pointer(value: int) -> str:
    return hex(value) if value else "NULL"


def c_hex(value: int) -> str:
    """C's %#x: 0 stays 0."""
    return hex(value) if value else "0"


def futex_op_name(op: int):
    """The operation as strace's table names it, or None (strace then prints the number)."""
    cmd = op & ~(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME)
    if cmd not in FUTEX_OPS or (op & FUTEX_CLOCK_REALTIME and cmd not in REALTIME_OPS):
        return None
    name = FUTEX_OPS[cmd] + ("_PRIVATE" if op & FUTEX_PRIVATE else "")
    return name + ("|FUTEX_CLOCK_REALTIME" if op & FUTEX_CLOCK_REALTIME else "")


def wake_op_text(encoded: int) -> str:
    """FUTEX_WAKE_OP's fourth argument: the operation on the second word and the comparison."""
    op, cmp, oparg, cmparg = encoded >> 28 & 7, encoded >> 24 & 15, encoded >> 12 & 0xFFF, encoded & 0xFFF
    shift = "FUTEX_OP_OPARG_SHIFT<<28|" if encoded >> 31 else ""
    op_name = f"FUTEX_OP_{WAKE_OPS[op]}" if op < len(WAKE_OPS) else c_hex(op)
    cmp_name = f"FUTEX_OP_CMP_{WAKE_CMPS[cmp]}" if cmp < len(WAKE_CMPS) else c_hex(cmp)
    return f"{shift}{op_name}<<28|{c_hex(oparg)}<<12|{cmp_name}<<24|{c_hex(cmparg)}"


def futex_text(args, timespec) -> list:
    """futex's arguments as strace shows them; timespec(address) decodes a timeout."""
    uaddr, op, val, utime, uaddr2, val3 = args
    cmd = op & ~(FUTEX_PRIVATE | FUTEX_CLOCK_REALTIME)
    name = futex_op_name(op) or f"{op:#x} /* FUTEX_??? */"
    shown = {"val": lambda: str(val & 0xFFFF_FFFF), "timeout": lambda: timespec(utime) if utime else "NULL",
             "val2": lambda: str(utime & 0xFFFF_FFFF), "uaddr2": lambda: pointer(uaddr2),
             "val3": lambda: wake_op_text(val3 & 0xFFFF_FFFF) if cmd == 5 else str(val3 & 0xFFFF_FFFF),
             "bitset": lambda: "FUTEX_BITSET_MATCH_ANY" if val3 & BITSET_ANY == BITSET_ANY else c_hex(val3),
             "utime": lambda: pointer(utime), "xval3": lambda: c_hex(val3 & 0xFFFF_FFFF)}
    kinds = FUTEX_SHOWN.get(cmd, ("val", "utime", "uaddr2", "xval3"))
    return [pointer(uaddr), name] + [shown[kind]() for kind in kinds]


def clone_text(args, flags) -> list:
    """clone(flags, newsp, parent_tid, child_tid, tls), in strace's order and names; flags(value,
    names, zero) is decode.py's NAME|NAME|0x... formatter."""
    clone_flags, newsp, parent_tid, child_tid, tls = args[:5]
    exit_signal = clone_flags & 0xFF
    text = flags(clone_flags & ~0xFF, CLONE_FLAGS, "")
    if exit_signal:
        text = (text + "|" if text else "") + signal_name(exit_signal)
    shown = [f"child_stack={pointer(newsp)}", f"flags={text or '0'}"]
    if clone_flags & 0x100000:
        shown.append(f"parent_tid={pointer(parent_tid)}")
    if clone_flags & 0x80000:
        shown.append(f"tls={pointer(tls)}")
    if clone_flags & 0x1200000:
        shown.append(f"child_tidptr={pointer(child_tid)}")
    return shown
