import pytest

from vmm.config import MachineConfig, parse_size
from vmm.errors import UsageError


@pytest.mark.parametrize("text,size", [("64M", 64 << 20), ("1G", 1 << 30), ("512k", 512 << 10),
                                       ("4096", 4096), ("128MiB", 128 << 20)])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "M", "12X", "-4M", "1.5G"])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("mem", [1 << 20, 4 << 30, (64 << 20) + 1])
def test_memory_bounds(mem):
    with pytest.raises(UsageError):
        MachineConfig(kernel="k", mem_size=mem).validate()


def test_program_args_join_the_command_line():
    config = MachineConfig(kernel="k", program_args=["a", "b"])
    config.validate()
    assert config.full_cmdline() == "console=ttyS0 -- a b"
    with pytest.raises(UsageError):
        MachineConfig(kernel="k", program_args=["has space"]).validate()


def test_unknown_accel_and_serial_are_refused():
    with pytest.raises(UsageError):
        MachineConfig(kernel="k", accel="hvf").validate()
    with pytest.raises(UsageError):
        MachineConfig(kernel="k", serial="tcp:1").validate()


def test_disk_specs_and_kernel_parameters():
    from vmm.config import DiskSpec
    config = MachineConfig(kernel="k", disks=["a.img", "b.img,ro"], program_args=["x"])
    assert config.disks == [DiskSpec("a.img", False), DiskSpec("b.img", True)]
    assert config.full_cmdline(["virtio_mmio.device=4K@0xd0000000:5"]) == \
        "virtio_mmio.device=4K@0xd0000000:5 console=ttyS0 -- x"
    for bad in (",ro", "a.img,rx"):
        with pytest.raises(UsageError):
            MachineConfig(kernel="k", disks=[bad])
