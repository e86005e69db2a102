"""The root file system's packing (vmm/initramfs): newc written and read back, file data on
page boundaries, hard links, symbolic links and device nodes, the host directory's listing
order kept, .cpio and .cpio.gz initrds, the program lookup the CLI does before booting, and
the one-line errors."""
import gzip
import os
import stat
import subprocess

import pytest

from vmm.errors import ImageError, InputError
from vmm.initramfs import ARCHIVE, ELF, find_program, load_initrd, newc, pack_directory

PAGE = 4096


def offsets(archive: bytes):
    """name -> offset of its data, from the headers (what the kernel sees)."""
    found, offset = {}, 0
    while offset + newc.HEADER_SIZE <= len(archive):
        if archive[offset] == 0:
            offset += 4
            continue
        namesize = int(archive[offset + 94:offset + 102], 16)
        filesize = int(archive[offset + 54:offset + 62], 16)
        name = archive[offset + 110:offset + 110 + namesize].split(b"\0")[0].decode()
        data = (offset + 110 + namesize + 3) & ~3
        found[name] = data
        offset = (data + filesize + 3) & ~3
    return found


def test_regular_files_start_on_a_page_and_read_back(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "tool").write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    (tmp_path / "note").write_text("hello\n")
    (tmp_path / "empty").write_bytes(b"")
    archive = pack_directory(tmp_path)
    at = offsets(archive)
    assert at["bin/tool"] % PAGE == 0 and at["note"] % PAGE == 0
    entries = {e.name: e for e in newc.read(archive)}
    assert entries["bin/tool"].data == (tmp_path / "bin" / "tool").read_bytes()
    assert entries["note"].data == b"hello\n" and entries["empty"].data == b""
    assert stat.S_ISDIR(entries["."].mode) and stat.S_ISDIR(entries["bin"].mode)
    assert list(entries)[:2] == [".", next(iter(os.listdir(tmp_path)))]   # the host's listing order


def test_the_padding_is_nul_bytes_that_linux_accepts(tmp_path):
    """A name padded to put the data on a page ends in NULs: Linux's initramfs checks only
    that the last byte of namesize is one; a reader takes the name up to the first."""
    (tmp_path / "f").write_bytes(b"x" * 100)
    archive = pack_directory(tmp_path)
    start = archive.index(b"f\0")
    namesize = int(archive[start - 110 + 94:start - 110 + 102], 16)
    assert namesize > 2 and archive[start + 1:start + namesize] == b"\0" * (namesize - 1)


def test_directories_come_before_what_they_hold_depth_first(tmp_path):
    for path in ("a/b/c", "a/d", "e"):
        (tmp_path / path).mkdir(parents=True)
    (tmp_path / "a" / "b" / "c" / "file").write_text("x")
    names = [e.name for e in newc.read(pack_directory(tmp_path))]
    for child, parent in (("a/b/c/file", "a/b/c"), ("a/b/c", "a/b"), ("a/b", "a"), ("a/d", "a")):
        assert names.index(parent) < names.index(child)


def test_links_devices_and_metadata(tmp_path):
    (tmp_path / "data").write_bytes(b"shared")
    os.link(tmp_path / "data", tmp_path / "again")
    os.symlink("data", tmp_path / "soft")
    os.chmod(tmp_path / "data", 0o640)
    os.utime(tmp_path / "data", (946684800, 946684800))
    if os.geteuid() == 0:
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    entries = {e.name: e for e in newc.read(pack_directory(tmp_path))}
    first, second = sorted((entries["data"], entries["again"]), key=lambda e: -len(e.data))
    assert first.ino == second.ino and first.nlink == 2 and first.data == b"shared" and second.data == b""
    assert stat.S_ISLNK(entries["soft"].mode) and entries["soft"].data == b"data"
    assert entries["data"].mode & 0o7777 == 0o640 and entries["data"].mtime == 946684800
    if os.geteuid() == 0:
        assert stat.S_ISCHR(entries["null"].mode) and (entries["null"].rdevmajor, entries["null"].rdevminor) == (1, 3)


def test_initrd_files_cpio_gzip_and_programs(tmp_path):
    tree = tmp_path / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin" / "x").write_bytes(b"#" * 5000)
    busybox = "/bin/busybox"
    listing = subprocess.run(["find", "."], cwd=tree, capture_output=True, check=True).stdout
    plain = subprocess.run([busybox, "cpio", "-o", "-H", "newc"], cwd=tree, input=listing,
                           capture_output=True, check=True).stdout
    name = next(n for n in offsets(plain) if n.endswith("bin/x"))
    assert offsets(plain)[name] % PAGE != 0              # another writer: 4-byte alignment only
    (tmp_path / "a.cpio").write_bytes(plain)
    (tmp_path / "a.cpio.gz").write_bytes(gzip.compress(plain))
    for initrd in ("a.cpio", "a.cpio.gz"):
        kind, archive = load_initrd((tmp_path / initrd).read_bytes(), initrd)
        assert kind == ARCHIVE and offsets(archive)[name] % PAGE == 0     # repacked, aligned
        assert {e.name: e.data for e in newc.read(archive)}[name] == b"#" * 5000
    (tmp_path / "prog").write_bytes(b"\x7fELF" + bytes(60))
    assert load_initrd((tmp_path / "prog").read_bytes(), "prog")[0] == ELF


@pytest.mark.parametrize("content,error,match", [
    (b"not an archive", ImageError, "neither a static ELF program nor a newc cpio archive"),
    (b"\x1f\x8b\x08broken", ImageError, "not a valid gzip file"),
    (b"070701" + b"zz" * 52, ImageError, "not hex digits"),
    (b"070701" + b"0" * 80 + b"00010000" + b"0" * 16, ImageError, "runs past the end"),
])
def test_bad_initrds_are_one_line_errors(content, error, match):
    with pytest.raises(error, match=match):
        load_initrd(content, "bad")


def test_missing_rootfs_and_initrd(tmp_path):
    with pytest.raises(InputError, match="no such directory"):
        pack_directory(tmp_path / "none")
    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        pack_directory(tmp_path / "file")


def test_program_lookup_follows_links_inside_the_root(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "usr" / "bin").mkdir(parents=True)
    (tmp_path / "bin" / "busybox").write_bytes(b"x")
    os.symlink("busybox", tmp_path / "bin" / "ls")                  # relative
    os.symlink("/bin/busybox", tmp_path / "usr" / "bin" / "awk")     # absolute: inside the root
    os.symlink("/nowhere", tmp_path / "bin" / "dangling")
    (tmp_path / "init").write_bytes(b"x")
    assert find_program(tmp_path, "ls") == "/bin/ls"
    assert find_program(tmp_path, "awk") == "/usr/bin/awk"
    assert find_program(tmp_path, "/bin/busybox") == "/bin/busybox"
    assert find_program(tmp_path, "dangling") is None and find_program(tmp_path, "nosuch") is None
    assert find_program(tmp_path, "") == "/init"
