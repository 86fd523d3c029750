"""Compression choices and the one-pass sink."""

from __future__ import annotations

import gzip
import io
import os
import subprocess

import pytest
import zstandard

from layers.compress import gzip_isal_level, new_compressor, open_decompressed, sniff_compression
from layers.sink import TarSink
from oci.digest import Digest

DATA = b"".join(b"line %d of some compressible text\n" % i for i in range(50_000)) + os.urandom(300_000)


def compress(kind: str, level: int | None = None) -> bytes:
    comp = new_compressor(kind, level)
    return comp.compress(DATA) + comp.flush()


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
@pytest.mark.parametrize("declared", ["auto", "exact"])
def test_roundtrip(kind: str, declared: str) -> None:
    blob = compress(kind)
    with open_decompressed(io.BytesIO(blob), kind if declared == "exact" else "auto") as stream:
        assert stream.read() == DATA


def test_gzip_is_standard_and_multi_member_safe() -> None:
    blob = compress("gzip")
    assert gzip.decompress(blob) == DATA
    assert subprocess.run(["gzip", "-dc"], input=blob, capture_output=True, check=True).stdout == DATA
    with open_decompressed(io.BytesIO(blob + blob), "gzip") as stream:  # concatenated members (pigz, some registries)
        assert stream.read() == DATA + DATA


def test_zstd_frames_have_checksums_and_read_across_frames() -> None:
    blob = compress("zstd")
    assert zstandard.get_frame_parameters(blob).has_checksum
    with open_decompressed(io.BytesIO(blob + blob), "zstd") as stream:
        assert stream.read() == DATA + DATA


def test_level_mapping() -> None:
    assert [gzip_isal_level(level) for level in (None, 0, 1, 2, 5, 6, 9)] == [2, None, 1, 2, 2, 3, 3]
    with pytest.raises(ValueError):
        gzip_isal_level(10)
    with open(__file__, "rb") as handle:
        text = handle.read() * 20
    sizes = []
    for level in (1, 9):
        comp = new_compressor("gzip", level)
        sizes.append(len(comp.compress(text) + comp.flush()))
    assert sizes[1] < sizes[0]
    stored = compress("gzip", 0)
    assert gzip.decompress(stored) == DATA and len(stored) > len(DATA)


def test_sniff() -> None:
    assert [sniff_compression(compress(kind)[:4]) for kind in ("gzip", "zstd", "none")] == ["gzip", "zstd", "none"]
    with pytest.raises(ValueError):
        new_compressor("lz4")


@pytest.mark.parametrize("threaded", [True, False])
def test_sink_hashes_tar_and_writes_compressed(threaded: bool) -> None:
    out = io.BytesIO()
    sink = TarSink(out, new_compressor("gzip"), threaded=threaded)
    for start in range(0, len(DATA), 70_000):  # mixed sizes: some coalesced, some forwarded as they are
        sink.write(DATA[start:start + 70_000])
    sink.write(DATA[:400_000])
    diff_id, size = sink.close()
    expected = DATA + DATA[:400_000]
    assert (diff_id, size) == (Digest.of_bytes(expected), len(expected))
    assert gzip.decompress(out.getvalue()) == expected


def test_sink_reports_a_failing_target() -> None:
    class Broken:
        def write(self, data: bytes) -> int:
            raise OSError(28, "No space left on device")

    sink = TarSink(Broken(), new_compressor("none"))
    with pytest.raises(OSError, match="No space left"):
        for _ in range(64):
            sink.write(bytes(1 << 20))
        sink.close()


@pytest.mark.parametrize("kind", ["gzip", "zstd", "none"])
def test_closing_the_reader_leaves_the_source_open(kind: str) -> None:
    source = io.BytesIO(compress(kind))
    with open_decompressed(source, "auto") as stream:
        stream.read(10)  # stop early, as an extractor failing on a hostile entry does
    assert not source.closed
