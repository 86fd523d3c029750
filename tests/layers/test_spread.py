"""`spread_subdirectories` marks an ext4 directory +T (FS_TOPDIR_FL) and says False where it cannot."""

from __future__ import annotations

import fcntl
import os
import struct
import tempfile
from pathlib import Path

import pytest

from layers.spread import spread_subdirectories


def _flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        return struct.unpack("i", fcntl.ioctl(fd, 0x80086601, struct.pack("i", 0)))[0]
    finally:
        os.close(fd)


def test_an_ext4_directory_is_marked_top(tmp_path: Path) -> None:
    try:
        _flags(tmp_path)
    except OSError as exc:
        pytest.skip(f"{tmp_path} keeps no ext2/3/4 inode flags ({exc.strerror})")
    assert spread_subdirectories(tmp_path)
    assert _flags(tmp_path) & 0x00020000, "lsattr would show T"
    assert spread_subdirectories(tmp_path), "marking it again changes nothing"


def test_elsewhere_it_says_false() -> None:
    with tempfile.TemporaryDirectory(dir="/dev/shm") as shm:  # tmpfs keeps no such flags
        assert not spread_subdirectories(Path(shm))
    assert not spread_subdirectories(Path("/nonexistent/wharfie"))
    link = Path(tempfile.mkdtemp()) / "link"
    link.symlink_to("/")
    try:
        assert not spread_subdirectories(link), "a symlink is not followed"
    finally:
        link.unlink()
        link.parent.rmdir()
