"""Fuzzing layer extraction (issue #17): whatever the tar, a clean result or one wharfie error line,
never another exception, never a hang, and nothing outside the scratch root touched.

Each example extracts one to three drawn layer tars (see `layer_tar_strategies`) into
TMP/scratch/root, with TMP/canary beside it, as image layers or as a plain ADD archive.
The budget comes from the Hypothesis profile (tests/conftest.py): `ci` by default (fixed
seed, bounded), `--hypothesis-profile=long` for a campaign. Each failure a campaign found is
kept below as an `@example`.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from layer_tar_strategies import Archive, Mutation, Spec, archives

from layers.extract import extract_layer
from oci.errors import WharfieError

HANG_SECONDS = 20  # one example extracts at most a few MB: anything near this is a hang


class Hang(Exception):
    """Raised by the alarm (an Exception, so Hypothesis shrinks it; `alarms` catches it being swallowed)."""


alarms: list[int] = []


@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        alarms.append(signum)
        raise Hang(f"extraction still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Box:
    """TMP/scratch/root (where layers go) and TMP/canary (what must never change)."""

    def __init__(self, base: Path) -> None:
        self.tmp = Path(tempfile.mkdtemp(dir=base))
        self.canary = self.tmp / "canary"
        self.root = self.tmp / "scratch" / "root"
        self.root.mkdir(parents=True)
        self.canary.mkdir()
        (self.canary / "target").write_text("canary")
        (self.canary / "dir").mkdir()
        (self.canary / "dir" / "inner").write_text("inner")
        os.symlink("target", self.canary / "link")
        for path in (self.canary / "target", self.canary / "dir", self.canary):
            os.chmod(path, 0o750)
            os.utime(path, ns=(1_000_000_000, 1_000_000_000), follow_symlinks=False)

    def host_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {
            "tmp": sorted(os.listdir(self.tmp)),
            "scratch": sorted(os.listdir(self.tmp / "scratch")),
            "root-is-dir": stat.S_ISDIR(os.lstat(self.root).st_mode),
        }
        for dirpath, dirnames, filenames in os.walk(self.canary):
            for name in [".", *dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                content = Path(path).read_bytes() if stat.S_ISREG(st.st_mode) else None
                state[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink, content,
                               sorted(os.listxattr(path, follow_symlinks=False)))
        return state

    def remove(self) -> None:
        # Extraction may leave directories without write or search permission (mode 0o000):
        # open them up before removing, or a non-root run would leave them behind.
        for dirpath, dirnames, _ in os.walk(self.tmp):
            for name in dirnames:
                path = os.path.join(dirpath, name)
                if not os.path.islink(path):
                    os.chmod(path, 0o700)
        shutil.rmtree(self.tmp)


@pytest.fixture(scope="session")
def fuzz_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz-layer-tar")


def extract_checked(box: Box, layers: list[Archive], whiteouts: bool) -> None:
    """Extract every layer; the property: success, or one WharfieError line naming the layer."""
    blobs = [archive.build(str(box.canary)) for archive in layers]
    before = box.host_state()
    alarms.clear()
    try:
        with time_limit(HANG_SECONDS):
            for index, blob in enumerate(blobs):
                label = f"layer {index + 1} of {len(blobs)}"
                try:
                    extract_layer(io.BytesIO(blob), box.root, whiteouts=whiteouts, label=label)
                except WharfieError as exc:
                    message = str(exc)
                    assert message.startswith(label + ": "), message
                    assert "\n" not in message and "Traceback" not in message, message
                    assert len(message) < 2000, message
                    break
    finally:
        assert not alarms, "extraction hung (and the alarm's exception was swallowed)"
        assert box.host_state() == before


def one(*entries: Spec, compression: str = "none", mutations: tuple[Mutation, ...] = (),
        compressed: tuple[Mutation, ...] = ()) -> list[Archive]:
    """A one-layer example in PAX format."""
    return [Archive(list(entries), tarfile.PAX_FORMAT, list(mutations), compression, list(compressed))]


@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(layers=st.lists(archives, min_size=1, max_size=3), whiteouts=st.booleans())
# Failures the fuzzer found, kept as regressions (what each raised before its fix):
# a corrupt deflate block (isal IsalError) and a zstd magic where gzip was (ZstdError);
@example(layers=one(compression="gzip", compressed=(Mutation("flip", 121, value=b"(\xb5/\xfd"),)), whiteouts=False)
@example(layers=one(compression="gzip", compressed=(Mutation("flip", 0, value=b"(\xb5/\xfd"),)), whiteouts=False)
# an mtime of 2**63 s (OverflowError from utime), an owner of 2**40 (OverflowError from chown);
@example(layers=one(Spec("fifo", "a", mtime=2**63)), whiteouts=False)
@example(layers=one(Spec("dir", "a", uid=2**40, gid=5)), whiteouts=False)
# a NUL byte in a PAX path (ValueError from os.stat), LIBARCHIVE.xattr not base64 (binascii.Error),
# a NUL byte in an xattr name (ValueError from setxattr);
@example(layers=one(Spec("symlink", "etc/nul\x00byte/x", link="/")), whiteouts=True)
@example(layers=one(Spec("file", "a", pax={"LIBARCHIVE.xattr.user.y": "a"})), whiteouts=True)
@example(layers=one(Spec("file", "a", pax={"SCHILY.xattr.user.a\x00b": "1"})), whiteouts=True)
# a sparse file of 2**62 bytes of holes, read as zeros for hours (a hang), PAX 1.0 and old GNU.
@example(layers=one(Spec("file", "a", sparse=(1 << 62, ()))), whiteouts=True)
@example(layers=one(Spec("file", "a", sparse=(1 << 40, ((0, 10),)), old_sparse=True)), whiteouts=True)
# A name with a newline in an error message, raw (two lines on the terminal).
@example(layers=[Archive([Spec("file", "new\nline"), Spec("file", "new\nline/b")], tarfile.PAX_FORMAT, [], "none", [])],
         whiteouts=False)
# Headers claiming 2**88 or 1 TiB of data to skip: tarfile's stream mode read past the end for ever.
@example(layers=one(Spec("unknown", "z"), mutations=(Mutation("field", 0, "size", b"\x80" + b"\xff" * 11),)),
         whiteouts=False)
@example(layers=one(Spec("file", "a", pax={"size": "0"}, sparse=(1 << 40, ((16, 0),))), compression="zstd"),
         whiteouts=False)
def test_hostile_layers_fail_cleanly_and_stay_inside_the_root(fuzz_base: Path, layers: list[Archive],
                                                             whiteouts: bool) -> None:
    box = Box(fuzz_base)
    try:
        extract_checked(box, layers, whiteouts)
    finally:
        box.remove()
