"""The register layout of the GDB remote protocol for x86-64: the order and sizes of the `g`
packet, the target description gdb reads (qXfer:features:read:target.xml), and the
conversion between a CpuState (plus the x87/SSE dict of EngineDebug.read_fpu) and gdb's
register numbers. It follows gdb's features/i386/64bit-core.xml, 64bit-sse.xml and
64bit-segments.xml, whose register numbering follows from the order.
"""
from ..arch.x86.cpu_state import FPU_CONTROL_WORD_RESET, MXCSR_RESET, RFLAGS_RESERVED_1

# (name, bits) in the order of the `g` packet.
GPR_ORDER = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
             "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
SEGMENT_ORDER = ("cs", "ss", "ds", "es", "fs", "gs")
X87_CONTROL = ("fctrl", "fstat", "ftag", "fiseg", "fioff", "foseg", "fooff", "fop")
REGISTERS = ([(name, 64) for name in GPR_ORDER] + [("rip", 64), ("eflags", 32)]
             + [(name, 32) for name in SEGMENT_ORDER] + [(f"st{i}", 80) for i in range(8)]
             + [(name, 32) for name in X87_CONTROL] + [(f"xmm{i}", 128) for i in range(16)]
             + [("mxcsr", 32), ("fs_base", 64), ("gs_base", 64)])
REGISTER_INDEX = {name: i for i, (name, _) in enumerate(REGISTERS)}
WRITABLE = frozenset(GPR_ORDER) | {"rip", "eflags", "fs_base", "gs_base"}

TARGET_XML = """<?xml version="1.0"?>
<!DOCTYPE target SYSTEM "gdb-target.dtd">
<target version="1.0">
  <architecture>i386:x86-64</architecture>
  <feature name="org.gnu.gdb.i386.core">
    <flags id="i386_eflags" size="4">
      <field name="CF" start="0" end="0"/><field name="" start="1" end="1"/>
      <field name="PF" start="2" end="2"/><field name="AF" start="4" end="4"/>
      <field name="ZF" start="6" end="6"/><field name="SF" start="7" end="7"/>
      <field name="TF" start="8" end="8"/><field name="IF" start="9" end="9"/>
      <field name="DF" start="10" end="10"/><field name="OF" start="11" end="11"/>
      <field name="NT" start="14" end="14"/><field name="RF" start="16" end="16"/>
      <field name="VM" start="17" end="17"/><field name="AC" start="18" end="18"/>
      <field name="VIF" start="19" end="19"/><field name="VIP" start="20" end="20"/>
      <field name="ID" start="21" end="21"/>
    </flags>
    <reg name="rax" bitsize="64" type="int64"/>
    <reg name="rbx" bitsize="64" type="int64"/>
    <reg name="rcx" bitsize="64" type="int64"/>
    <reg name="rdx" bitsize="64" type="int64"/>
    <reg name="rsi" bitsize="64" type="int64"/>
    <reg name="rdi" bitsize="64" type="int64"/>
    <reg name="rbp" bitsize="64" type="data_ptr"/>
    <reg name="rsp" bitsize="64" type="data_ptr"/>
    <reg name="r8" bitsize="64" type="int64"/>
    <reg name="r9" bitsize="64" type="int64"/>
    <reg name="r10" bitsize="64" type="int64"/>
    <reg name="r11" bitsize="64" type="int64"/>
    <reg name="r12" bitsize="64" type="int64"/>
    <reg name="r13" bitsize="64" type="int64"/>
    <reg name="r14" bitsize="64" type="int64"/>
    <reg name="r15" bitsize="64" type="int64"/>
    <reg name="rip" bitsize="64" type="code_ptr"/>
    <reg name="eflags" bitsize="32" type="i386_eflags"/>
    <reg name="cs" bitsize="32" type="int32"/>
    <reg name="ss" bitsize="32" type="int32"/>
    <reg name="ds" bitsize="32" type="int32"/>
    <reg name="es" bitsize="32" type="int32"/>
    <reg name="fs" bitsize="32" type="int32"/>
    <reg name="gs" bitsize="32" type="int32"/>
    <reg name="st0" bitsize="80" type="i387_ext"/>
    <reg name="st1" bitsize="80" type="i387_ext"/>
    <reg name="st2" bitsize="80" type="i387_ext"/>
    <reg name="st3" bitsize="80" type="i387_ext"/>
    <reg name="st4" bitsize="80" type="i387_ext"/>
    <reg name="st5" bitsize="80" type="i387_ext"/>
    <reg name="st6" bitsize="80" type="i387_ext"/>
    <reg name="st7" bitsize="80" type="i387_ext"/>
    <reg name="fctrl" bitsize="32" type="int" group="float"/>
    <reg name="fstat" bitsize="32" type="int" group="float"/>
    <reg name="ftag" bitsize="32" type="int" group="float"/>
    <reg name="fiseg" bitsize="32" type="int" group="float"/>
    <reg name="fioff" bitsize="32" type="int" group="float"/>
    <reg name="foseg" bitsize="32" type="int" group="float"/>
    <reg name="fooff" bitsize="32" type="int" group="float"/>
    <reg name="fop" bitsize="32" type="int" group="float"/>
  </feature>
  <feature name="org.gnu.gdb.i386.sse">
    <vector id="v4f" type="ieee_single" count="4"/>
    <vector id="v2d" type="ieee_double" count="2"/>
    <vector id="v16i8" type="int8" count="16"/>
    <vector id="v8i16" type="int16" count="8"/>
    <vector id="v4i32" type="int32" count="4"/>
    <vector id="v2i64" type="int64" count="2"/>
    <union id="vec128">
      <field name="v4_float" type="v4f"/>
      <field name="v2_double" type="v2d"/>
      <field name="v16_int8" type="v16i8"/>
      <field name="v8_int16" type="v8i16"/>
      <field name="v4_int32" type="v4i32"/>
      <field name="v2_int64" type="v2i64"/>
      <field name="uint128" type="uint128"/>
    </union>
    <flags id="i386_mxcsr" size="4">
      <field name="IE" start="0" end="0"/><field name="DE" start="1" end="1"/>
      <field name="ZE" start="2" end="2"/><field name="OE" start="3" end="3"/>
      <field name="UE" start="4" end="4"/><field name="PE" start="5" end="5"/>
      <field name="DAZ" start="6" end="6"/><field name="IM" start="7" end="7"/>
      <field name="DM" start="8" end="8"/><field name="ZM" start="9" end="9"/>
      <field name="OM" start="10" end="10"/><field name="UM" start="11" end="11"/>
      <field name="PM" start="12" end="12"/><field name="FZ" start="15" end="15"/>
    </flags>
""" + "".join(f'    <reg name="xmm{i}" bitsize="128" type="vec128"/>\n' for i in range(16)) + """\
    <reg name="mxcsr" bitsize="32" type="i386_mxcsr" group="vector"/>
  </feature>
  <feature name="org.gnu.gdb.i386.segments">
    <reg name="fs_base" bitsize="64" type="int"/>
    <reg name="gs_base" bitsize="64" type="int"/>
  </feature>
</target>
"""


def register_values(state, fpu) -> dict:
    """{register name: int} for every register of the `g` packet (x87/SSE from `fpu`, a
    dict as EngineDebug.read_fpu() returns it, or zeros)."""
    values = {name: state.regs[name] for name in GPR_ORDER}
    values.update(rip=state.rip, eflags=state.rflags & 0xFFFF_FFFF,
                  fs_base=state.fs.base, gs_base=state.gs.base)
    for name in SEGMENT_ORDER:
        values[name] = getattr(state, name).selector
    fpu = fpu or {}
    st = fpu.get("st") or [bytes(10)] * 8
    xmm = fpu.get("xmm") or [bytes(16)] * 16
    for i in range(8):
        values[f"st{i}"] = int.from_bytes(st[i][:10], "little")
    for i in range(16):
        values[f"xmm{i}"] = int.from_bytes(xmm[i][:16], "little")
    values.update(fctrl=fpu.get("fctrl", FPU_CONTROL_WORD_RESET), fstat=fpu.get("fstat", 0),
                  ftag=_full_tag_word(fpu.get("ftag", 0)), fiseg=0, foseg=0,
                  fioff=fpu.get("fioff", 0) & 0xFFFF_FFFF, fooff=fpu.get("fooff", 0) & 0xFFFF_FFFF,
                  fop=fpu.get("fop", 0), mxcsr=fpu.get("mxcsr", MXCSR_RESET))
    return values


def _full_tag_word(abridged: int) -> int:
    """FXSAVE's abridged tag byte (1 = valid) -> the x87 tag word (00 valid, 11 empty)."""
    return sum((0 if abridged >> i & 1 else 3) << (2 * i) for i in range(8))


def encode_registers(values: dict) -> str:
    return "".join(encode_register(values[name], bits) for name, bits in REGISTERS)


def encode_register(value: int, bits: int) -> str:
    return (value & ((1 << bits) - 1)).to_bytes(bits // 8, "little").hex()


def apply_register(state, name: str, value: int) -> bool:
    """Write one register into a CpuState; False if gdb may not change it here."""
    if name in GPR_ORDER:
        state.regs[name] = value
    elif name == "rip":
        state.rip = value
    elif name == "eflags":
        state.rflags = (state.rflags & ~0xFFFF_FFFF) | value | RFLAGS_RESERVED_1
    elif name == "fs_base":
        state.fs.base = value
    elif name == "gs_base":
        state.gs.base = value
    else:
        return False
    return True
