"""`vmm run`'s own parser (cli_options.parse_run) gives what argparse gives, or hands over.

A plain command line is read without argparse (start-up); anything else must reach argparse,
so that help and errors stay argparse's. For every command line here, parse_run's answer is
either None or exactly argparse's namespace.
"""
import pytest

from vmm import cli
from vmm.cli_options import RUN_OPTIONS, parse_run
from vmm.cli_parser import build_parser
from vmm.errors import UsageError

PLAIN = [
    [],
    ["--accel", "kvm"],
    ["--accel=unicorn", "--initrd", "compute"],
    ["kernel.elf", "--initrd", ""],
    ["--initrd=", "k"],
    ["--mem", "128M", "--timeout", "2.5", "--stats", "--idle", "skip"],
    ["--disk", "a.img", "--disk=b.img,ro", "--serial", "none"],
    ["--firmware", "--initrd", "hello"],
    ["--bios", "fw.bin"],
    ["--trace", "t.txt", "--trace-limit", "10", "--trace-exits", "e.txt"],
    ["--gdb", "127.0.0.1:1234", "--gdb-wait", "--debug"],
    ["--cmdline", "console=ttyS0 quiet", "-"],
    ["--timeout", "1_0"],
    ["--rootfs", "root", "--strace"],
    ["--strace", "--rootfs=root"],
    ["--strace", "trace.txt", "--rootfs", "root"],
    ["--strace=trace.txt", "kernel.elf"],
    ["--rootfs", "root", "--strace", "-"],
]
HANDED_OVER = [
    ["-h"], ["--help"], ["--init", "hello"], ["--bogus"], ["--accel", "hvf"], ["--accel"],
    ["--timeout", "soon"], ["--trace-limit", "1.5"], ["--firmware", "--bios", "x"], ["--stats=yes"],
    ["a", "b"], ["--timeout", "-1"], ["--cmdline", "-x quiet"], ["-x"], ["--mem", "--stats"],
]


def argparse_values(argv):
    namespace = build_parser().parse_args(["run", *argv])
    values = vars(namespace)
    del values["command"]
    return values


@pytest.mark.parametrize("argv", PLAIN, ids=" ".join)
def test_plain_command_lines_parse_as_argparse_does(argv):
    values = parse_run(argv)
    assert values is not None, "a plain command line must not need argparse"
    assert values == argparse_values(argv)


@pytest.mark.parametrize("argv", HANDED_OVER, ids=" ".join)
def test_anything_else_goes_to_argparse(argv):
    assert parse_run(argv) is None


def test_argparse_then_answers_as_before(capsys):
    with pytest.raises(UsageError, match="invalid choice: 'hvf'"):
        cli.parse_arguments(["run", "--accel", "hvf"])
    with pytest.raises(UsageError, match="not allowed with argument"):
        cli.parse_arguments(["run", "--firmware", "--bios", "x"])
    with pytest.raises(SystemExit):
        cli.parse_arguments(["run", "--help"])
    out = capsys.readouterr().out
    for option in RUN_OPTIONS:
        if option.help:
            assert option.flags[0] in out


def test_the_accelerator_default_follows_the_environment(monkeypatch):
    monkeypatch.setenv("VMM_ACCEL", "unicorn")
    assert parse_run([])["accel"] == "unicorn" == argparse_values([])["accel"]
    monkeypatch.delenv("VMM_ACCEL")
    assert parse_run([])["accel"] == "auto"


def test_abbreviations_still_work_through_argparse():
    assert cli.parse_arguments(["run", "--init", "compute"]).initrd == "compute"
