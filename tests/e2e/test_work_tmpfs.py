"""The build's trees on a tmpfs where the disk is slow to create files (builder/execution/work_tmpfs.py, #14).

Outcomes, not the mechanism: the image is the same whether the work dir is a
tmpfs or on disk; a step that fills the tmpfs does not fail the build (it is
built again with the work dir on disk, and says so); nothing stays mounted
or behind on the host (the session's fixtures check $TMPDIR and the mounts).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.execution.work_tmpfs import disk_is_slow, filesystem_full, memory_headroom
from fixtures.readback import run_wharfie
from fixtures.registry import Registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the build's own mount namespace needs root here")

DOCKERFILE = """\
FROM {base}
RUN mkdir /many && for i in $(seq 1 300); do echo $i > /many/f$i; done && rm /bin/true
COPY app.txt /app/
RUN {big}
CMD ["sh"]
"""


def _context(tmp_path: Path, base: str, big: str = "true") -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "app.txt").write_text("app\n")
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base, big=big))
    return context


def _build(context: Path, registry: Registry, tmp_path: Path, name: str, work_tmpfs: str) -> tuple[str, str]:
    digest_file = tmp_path / f"digest-{name}"
    done = run_wharfie("build", str(context), "-d", f"{registry.host}/tmpfs/{name}:1", "--insecure-registry",
                       registry.host, "--cache-dir", str(tmp_path / f"cache-{name}"), "--digest-file", str(digest_file),
                       "--reproducible", "-v", "debug", env={"WHARFIE_WORK_TMPFS": work_tmpfs})
    assert done.returncode == 0, done.stderr[-3000:]
    return digest_file.read_text().strip(), done.stderr


def test_the_image_is_the_same_on_a_tmpfs_and_on_disk(registry_open: Registry, busybox_ref: str,
                                                       tmp_path: Path) -> None:
    context = _context(tmp_path, busybox_ref)
    on_disk, disk_log = _build(context, registry_open, tmp_path, "disk", "0")
    on_tmpfs, tmpfs_log = _build(context, registry_open, tmp_path, "tmpfs", "1")
    assert "work dir: a tmpfs of up to" in tmpfs_log and "work dir: a tmpfs" not in disk_log
    assert on_tmpfs == on_disk


def test_a_step_that_fills_the_tmpfs_is_built_again_on_disk(registry_open: Registry, busybox_ref: str,
                                                            tmp_path: Path) -> None:
    # 48 MiB written by a step, through a tmpfs of 16 MiB: the first attempt fails with no space left.
    context = _context(tmp_path, busybox_ref, big="dd if=/dev/zero of=/big bs=1M count=48")
    on_disk, _ = _build(context, registry_open, tmp_path, "disk", "0")
    retried, log = _build(context, registry_open, tmp_path, "small", "16M")
    assert "work dir: a tmpfs of up to 16 MiB" in log
    assert "(no room left in the work dir " in log and "): building again with the work dir on disk" in log
    assert retried == on_disk


def test_a_bad_size_is_one_line(busybox_ref: str, tmp_path: Path) -> None:
    done = run_wharfie("build", str(_context(tmp_path, busybox_ref)), "--no-push", "--cache-dir",
                       str(tmp_path / "cache"), env={"WHARFIE_WORK_TMPFS": "lots"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "wharfie: error: WHARFIE_WORK_TMPFS=lots: expected 0, 1 or a size such as 512M")


def test_the_decision_reads_the_machine(tmp_path: Path) -> None:
    headroom = memory_headroom()
    with open("/proc/meminfo") as meminfo:
        available = next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    assert 0 < headroom <= available * 1.1  # the cgroup can only lower it (MemAvailable moves meanwhile)
    reason = disk_is_slow(tmp_path, rootless=False)
    journal = _journal_of(tmp_path)
    if journal == "<none>":
        assert reason is not None and "ext4 without a journal" in reason
    elif reason is not None:
        assert "takes" in reason or "overlay cannot" in reason  # the probes' verdicts
    assert not filesystem_full(tmp_path)


def _journal_of(path: Path) -> str | None:
    dev = os.stat(path).st_dev
    try:
        name = os.path.basename(os.readlink(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
        return Path(f"/sys/fs/ext4/{name}/journal_task").read_text().strip()
    except OSError:
        return None
