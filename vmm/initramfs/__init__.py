"""The root file system handed to the tiny kernel: a newc cpio archive (an initramfs),
packed from a host directory or taken from a .cpio[.gz] file.

newc.py reads and writes the format; image.py builds the archive the VMM boots with.
"""
from .image import (ARCHIVE, ELF, find_program, is_archive, load_initrd, pack_directory)

__all__ = ["ARCHIVE", "ELF", "find_program", "is_archive", "load_initrd", "pack_directory"]
