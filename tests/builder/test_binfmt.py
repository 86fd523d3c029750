"""binfmt_misc: the kernel's magic/mask match against a target's ELF header, on fake registration tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.execution.binfmt import find_interpreter, require_runnable
from oci.errors import WharfieError
from oci.models import Platform

# qemu-user-static's registration for aarch64, as /proc/sys/fs/binfmt_misc/qemu-aarch64 shows it
AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: {flags}
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""
AMD64 = Platform("linux", "amd64")


def _table(tmp_path: Path, status: str = "enabled", **entries: str) -> Path:
    table = tmp_path / "binfmt_misc"
    table.mkdir(parents=True)
    (table / "status").write_text(status + "\n")
    (table / "register").write_text("")
    for name, text in entries.items():
        (table / name).write_text(text)
    return table


def test_registered_interpreter_with_fix_binary_is_used(tmp_path: Path) -> None:
    table = _table(tmp_path, **{"qemu-aarch64": AARCH64.format(flags="POCF")})
    found = find_interpreter("arm64", table)
    assert found is not None and found.path.endswith("aarch64-binfmt-P")
    require_runnable(Platform("linux", "arm64"), host=AMD64, binfmt_dir=table)
    assert find_interpreter("riscv64", table) is None  # the mask still tells architectures apart


def test_missing_interpreter_is_named(tmp_path: Path) -> None:
    table = _table(tmp_path, **{"qemu-aarch64": AARCH64.format(flags="POCF")})
    with pytest.raises(WharfieError, match=r"RUN for linux/riscv64 needs a binfmt_misc interpreter for riscv64 "
                                           r"\(qemu-user-static\)"):
        require_runnable(Platform("linux", "riscv64"), host=AMD64, binfmt_dir=table)


def test_disabled_or_without_fix_binary(tmp_path: Path) -> None:
    off = _table(tmp_path / "a", **{"qemu-aarch64": AARCH64.format(flags="F").replace("enabled", "disabled")})
    assert find_interpreter("arm64", off) is None
    everything_off = _table(tmp_path / "b", status="disabled", **{"qemu-aarch64": AARCH64.format(flags="F")})
    assert find_interpreter("arm64", everything_off) is None
    no_f = _table(tmp_path / "c", **{"qemu-aarch64": AARCH64.format(flags="P")})
    with pytest.raises(WharfieError, match="without the F"):
        require_runnable(Platform("linux", "arm64"), host=AMD64, binfmt_dir=no_f)


def test_native_platforms_need_nothing(tmp_path: Path) -> None:
    empty = _table(tmp_path)
    require_runnable(Platform("linux", "amd64"), host=AMD64, binfmt_dir=empty)
    require_runnable(Platform("linux", "386"), host=AMD64, binfmt_dir=empty)
    require_runnable(Platform("linux", "arm64", "v8"), host=Platform("linux", "arm64"), binfmt_dir=empty)
    with pytest.raises(WharfieError, match="only linux images"):
        require_runnable(Platform("windows", "amd64"), host=AMD64, binfmt_dir=empty)


def test_binfmt_misc_not_mounted(tmp_path: Path) -> None:
    with pytest.raises(WharfieError, match="for aarch64"):
        require_runnable(Platform("linux", "arm64"), host=AMD64, binfmt_dir=tmp_path / "absent")
