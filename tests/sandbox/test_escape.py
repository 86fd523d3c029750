"""A RUN step as root cannot write outside its rootfs, nor reach the host through /proc, mounts or devices."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from fixtures.readback import run_wharfie

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox as root is what is attacked here")


def _host_block_device() -> tuple[int, int] | None:
    for line in Path("/proc/partitions").read_text().splitlines()[2:]:
        fields = line.split()
        if len(fields) == 4:
            return int(fields[0]), int(fields[1])
    return None


def _escape_binary(tmp_path: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the escape attempts")
    binary = tmp_path / "ctx" / "escape"
    result = subprocess.run(["gcc", "-static", "-O1", "-o", str(binary), str(Path(__file__).with_name("escape.c"))],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {result.stderr.strip()[:200]}")
    return binary


def test_run_cannot_write_outside_its_rootfs(busybox_ref: str, registry_open, tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    _escape_binary(tmp_path)
    marker = f"/tmp/wharfie-escape-{uuid.uuid4().hex}"
    device = _host_block_device()
    disk = (f"mknod /tmp/disk b {device[0]} {device[1]} && (head -c 16 /tmp/disk >/dev/null 2>&1 "
            "&& echo 'disk: READ' || echo 'disk: blocked'); ") if device else ""
    (tmp_path / "ctx" / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        "COPY escape /escape\n"
        f"RUN /escape {marker}; {disk}"
        "(echo h > /proc/sysrq-trigger) 2>/dev/null && echo 'sysrq: WROTE' || echo 'sysrq: blocked'; "
        "(echo 1 > /proc/sys/vm/compact_memory) 2>/dev/null && echo 'proc-sys: WROTE' || echo 'proc-sys: blocked'; "
        "(head -c 1 /proc/kcore | wc -c | grep -q 1) && echo 'kcore: READ' || echo 'kcore: blocked'; "
        "([ -e /sys/kernel ] || [ -e /sys/fs ]) && echo 'sysfs: VISIBLE' || echo 'sysfs: blocked'\n"
    )
    result = run_wharfie("build", str(tmp_path / "ctx"), "--no-push", "--isolation", "sandbox",
                         "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    out = result.stderr
    lines = out.splitlines()
    try:
        assert not os.path.exists(marker), f"a RUN step wrote {marker} on the host:\n{out}"
        assert "chroot-escape: wrote" in out  # it wrote, but inside the rootfs
        assert "MOUNTED" not in out and "mount tmpfs: Operation not permitted" in out, out
        assert "proc-1-root: wrote" in out or "proc-1-root: open" in out
        for line in ("sysrq: blocked", "proc-sys: blocked", "kcore: blocked", "sysfs: blocked"):
            assert line in lines, out
        if device:
            assert "disk: blocked" in lines, out
    finally:
        if os.path.exists(marker):
            os.unlink(marker)
