"""DebugSession (vmm/debug/session.py): the options a run can take and what each does to a
real kernel run, through the same calls the machine makes."""
import pytest

from vmm.config import MachineConfig
from vmm.debug.session import DebugOptions, DebugSession
from vmm.engines import kvm_features
from vmm.errors import UsageError
from vmm import machine
from vmm.machine import Machine
from vmm.outcome import DEBUG_EXIT

from conftest import engine_params


@pytest.mark.parametrize("options,message", [
    (DebugOptions(trace_limit=0), "--trace-limit"),
    (DebugOptions(gdb_wait=True), "--gdb-wait needs --gdb"),
    (DebugOptions(gdb="127.0.0.1:1", trace="t"), "cannot be used together"),
    (DebugOptions(gdb="10.0.0.1:1234"), "loopback"),
])
def test_bad_option_combinations(options, message):
    with pytest.raises(UsageError, match=message):
        DebugSession(options)


def test_default_options_change_nothing():
    session = DebugSession()
    ports, mmio = object(), object()
    assert session.wrap_buses(ports, mmio) == (ports, mmio)
    assert not session.options.active and session.listening() is None


@pytest.mark.parametrize("engine_name", engine_params(kvm_features=(kvm_features.STEP_MODE_SWITCH,)))
def test_trace_exit_trace_and_histogram_on_a_kernel_run(engine_name, kernel_path, tmp_path, monkeypatch):
    options = DebugOptions(trace=str(tmp_path / "insns"), trace_limit=500, trace_exits=str(tmp_path / "exits"),
                           stats=True, recent_exits=4)
    session = DebugSession(options)
    real_choose = machine.choose_engine

    def choose_engine(accel):
        """What Machine.__init__ is to do with a session: wrap the buses it gives the engine."""
        cls, note = real_choose(accel)

        class Wrapped(cls):
            def __init__(self, memory, ports, mmio, control, cpuid, *args, **kwargs):
                ports, mmio = session.wrap_buses(ports, mmio)
                super().__init__(memory, ports, mmio, control, cpuid, *args, **kwargs)
        return Wrapped, note

    monkeypatch.setattr(machine, "choose_engine", choose_engine)
    config = MachineConfig(kernel=kernel_path, initrd="guest/build/programs/hello", accel=engine_name,
                           serial="none")
    with Machine(config) as vm:
        session.attach(vm.engine)
        outcome = session.run(vm.engine, 30)
        report = session.crash_report(vm.engine.debug())
        session.close(outcome)
        histogram = session.histogram_text(vm.ports, vm.mmio)
    assert outcome.reason == DEBUG_EXIT and outcome.status == 0
    instructions = (tmp_path / "insns").read_text().splitlines()
    assert len([line for line in instructions if line.startswith("0x")]) == 500
    assert instructions[-1] == "# end: debug-exit: guest wrote 0x0 to the debug-exit port"
    exit_lines = (tmp_path / "exits").read_text().splitlines()
    assert any(line.endswith("pio-out    port=0x03f8 size=1 data=0x68") for line in exit_lines)  # 'h'
    assert all(line.startswith(("#", " ")) for line in exit_lines)
    assert exit_lines[-1].endswith("end        debug-exit: guest wrote 0x0 to the debug-exit port")
    assert "last 4 exits (oldest first):" in report and "port=0x00f4 size=4" in report
    assert "Uart16550+0x0" in histogram and "DebugExit+0x0" in histogram
    assert session.histogram_dict()["pio-out"][0x3F8] == len(b"hello from ring 3\n")
