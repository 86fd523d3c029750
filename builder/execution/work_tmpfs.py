"""The build's short-lived trees on a tmpfs, where creating files on this machine's disk is slow.

Why: on ext4 without a journal, creating a file shortly after files near it
were deleted costs up to a millisecond (the kernel checks every recently
freed inode of the block group, ext4's `recently_deleted`), for about six
minutes after the deletions. Every build removes its trees, so each one
slows the next: measured on the CI machines, a RUN creating 5000 files took
2.6-6.6 s through an overlay whose upper dir was on that disk, 0.35 s with
it on tmpfs; extracting a Debian minbase 3.7 s against 0.2 s. A disk with a
journal (or another filesystem) creates files in tens of microseconds, so
there the trees stay on disk.

What goes on the tmpfs: the command's private TMPDIR (builder/cli/cancel.py),
that is the stage trees' upper dirs, each RUN's overlay upper and work dirs,
COPY's scratch. Layer blobs, the blob cache and the unpacked-layer store
stay on disk (`--cache-dir`). The tmpfs is mounted in the build's own mount
namespace (builder/execution/mount_namespace.py), so nobody else sees it and
it goes with the build however the build ends.

Its size is half of the memory the build may still use: the smaller of
MemAvailable and the headroom of the build's memory cgroup (tmpfs pages are
charged to it: a bigger tmpfs could get a CI job killed). Below 512 MiB it
is not used. A step that fails while the tmpfs is full is not the user's
fault: the CLI builds again once with the trees on disk
(builder/cli/build_command.py), so a build never fails for this choice.
`WHARFIE_WORK_TMPFS=0` (or `1`) overrides the decision; a size (`512M`)
forces a tmpfs of that size.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from layers.overlay import overlay_supported
from oci.errors import WharfieError

__all__ = ["WorkDirFull", "WorkTmpfs", "disk_is_slow", "filesystem_full", "memory_headroom", "work_tmpfs"]

log = logging.getLogger("wharfie")

MIN_SIZE = 512 << 20
_MS_NOSUID, _MS_NODEV = 0x2, 0x4
_MNT_DETACH = 0x2
_PROBE_FILES = 64
_SLOW_CREATE_SECONDS = 150e-6  # per file: tmpfs takes ~8 us, a healthy disk 15-60 us, a poisoned one ~1 ms


class WorkDirFull(WharfieError):
    """A step failed while the build's work dir had no room left (the engine raises it, the CLI may retry)."""


@dataclass
class WorkTmpfs:
    """The tmpfs mounted over the build's TMPDIR, and why."""

    path: Path
    size: int
    reason: str
    mounted: bool = True

    def unmount(self) -> None:
        if self.mounted:
            _libc().umount2(os.fsencode(self.path), _MNT_DETACH)
            self.mounted = False


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL("libc.so.6", use_errno=True)


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def memory_headroom() -> int:
    """Bytes the build may still take: MemAvailable, or less if its memory cgroup (v2 or v1) is nearer its limit."""
    available = 0
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        return 0
    limits = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        hierarchy, _, rest = line.partition(":")
        controllers, _, group = rest.partition(":")
        if hierarchy == "0" and not controllers:  # cgroup v2
            base = "/sys/fs/cgroup" + group.rstrip("/")
            limit, used = _read_int(base + "/memory.max"), _read_int(base + "/memory.current")
        elif "memory" in controllers.split(","):  # cgroup v1
            base = "/sys/fs/cgroup/memory" + group.rstrip("/")
            limit, used = _read_int(base + "/memory.limit_in_bytes"), _read_int(base + "/memory.usage_in_bytes")
        else:
            continue
        if limit is not None and used is not None and limit < (1 << 60):  # "max" or v1's huge number: no limit
            limits.append(max(0, limit - used))
    return min([available, *limits])


def _journal_less_ext4(path: Path) -> str | None:
    """The device name when `path` is on ext4 mounted without a journal (its sysfs `journal_task` is `<none>`).

    Found from the device number, not the mount table: /sys/dev/block/MAJ:MIN names the device, and
    /sys/fs/ext4/NAME exists only for a mounted ext4.
    """
    try:
        dev = os.stat(path).st_dev
        name = os.path.basename(os.readlink(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}"))
        journal = (Path("/sys/fs/ext4") / name / "journal_task").read_text().strip()
    except OSError:
        return None
    return name if journal == "<none>" else None


def disk_is_slow(root: Path, *, rootless: bool) -> str | None:
    """Why the build's trees should not stay under `root` here (a sentence), else None.

    The static check first (journal-less ext4, whose slowness a small probe can miss: it depends on where
    the files land); else a probe of 64 creations in a fresh directory under `root`, left for the build's
    own removal (deleting them now would slow the build's own creations); last, whether an overlay can use
    `root` at all (in a job container, / and /tmp are often an overlay themselves, which cannot hold an upper
    dir: without a tmpfs, RUN steps would be captured by walking the whole tree twice).
    """
    device = _journal_less_ext4(root)
    if device is not None:
        return f"{root} is on ext4 without a journal ({device}): files created near recently deleted ones are slow"
    probe = Path(tempfile.mkdtemp(prefix="probe-", dir=root))
    started = time.perf_counter()
    for index in range(_PROBE_FILES):
        os.close(os.open(probe / str(index), os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600))
    per_file = (time.perf_counter() - started) / _PROBE_FILES
    if per_file > _SLOW_CREATE_SECONDS:
        return f"creating a file under {root} takes {per_file * 1e6:.0f} µs"
    if not overlay_supported(root, userxattr=rootless, report=False):
        return f"an overlay cannot keep its upper dir under {root}"
    return None


def filesystem_full(path: Path) -> bool:
    """Whether the filesystem holding `path` has (next to) no room or inodes left."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    free, total = st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize
    return free < max(1 << 20, total // 100) or (st.f_files > 0 and st.f_favail == 0)


def _parse_size(text: str) -> int:
    number, unit = (text[:-1], text[-1].upper()) if text[-1:].isalpha() else (text, "")
    if not number.isdigit() or unit not in ("", "K", "M", "G"):
        raise WharfieError(f"WHARFIE_WORK_TMPFS={text}: expected 0, 1 or a size such as 512M")
    return int(number) << {"": 0, "K": 10, "M": 20, "G": 30}[unit]


def _user_xattrs_work(path: Path) -> bool:
    """Rootless overlays keep their whiteouts in user.* xattrs: a tmpfs takes them from Linux 6.6 on."""
    probe = path / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.wharfie.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


@contextmanager
def work_tmpfs(tmpdir: Path, *, rootless: bool) -> Iterator[WorkTmpfs | None]:
    """Mount a tmpfs over the (empty) `tmpdir` when the disk under it is slow; unmounted at the end.

    Must run in the build's own mount namespace. Yields None when the trees stay on disk.
    """
    forced = os.environ.get("WHARFIE_WORK_TMPFS", "").strip()
    if forced == "0":
        yield None
        return
    size = memory_headroom() // 2
    reason: str | None  # why the work trees go to a tmpfs; None: they stay on disk
    if forced:  # "1", or a size ("64M") that forces a tmpfs of that size
        reason, size = f"WHARFIE_WORK_TMPFS={forced}", size if forced == "1" else _parse_size(forced)
    else:
        reason = disk_is_slow(tmpdir, rootless=rootless)
        if reason is not None and size < MIN_SIZE:
            log.debug("work dir: on disk although %s: %d MiB of memory headroom is too little for a tmpfs",
                      reason, size >> 20)
            reason = None
    if reason is None:
        yield None
        return
    data = f"size={size},mode=0700".encode()
    if _libc().mount(b"tmpfs", os.fsencode(tmpdir), b"tmpfs", _MS_NOSUID | _MS_NODEV, data) != 0:
        log.debug("work dir: cannot mount a tmpfs (%s): on disk", os.strerror(ctypes.get_errno()))
        yield None
        return
    mounted = WorkTmpfs(tmpdir, size, reason)
    try:
        if rootless and not _user_xattrs_work(tmpdir):
            log.debug("work dir: this tmpfs takes no user.* xattrs (rootless overlays need them): on disk")
            mounted.unmount()
            yield None
            return
        log.debug("work dir: a tmpfs of up to %d MiB (%s)", size >> 20, reason)
        yield mounted
    finally:
        mounted.unmount()
