"""The cache key function: what changes a key and what must not."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from builder.cache import cache_key
from builder.cache.cache_key import layer_format, sources_digest, start_key, step_key
from builder.frontend import instructions as ins
from oci.models import Platform

FORMAT = layer_format("gzip", None, None)
BASE = start_key("sha256:" + "a" * 64, Platform("linux", "amd64"), FORMAT)
COPY = ins.COPY(line=3, original="COPY app/ /app/", sources=("app/",), dest="/app/")


def key(instr: ins.Instruction = COPY, *, args=(("A", "1"),), env=(("PATH", "/bin"),), sources="s") -> str:
    return step_key(BASE, instr, args=args, env=env, sources=sources)


def test_same_inputs_same_key_and_line_numbers_do_not_count() -> None:
    assert key() == key()
    assert key(replace(COPY, line=30, end_line=30, original="COPY  app/  /app/")) == key()


def test_every_input_changes_the_key() -> None:
    variants = {
        "chown flag": key(replace(COPY, chown="1000:1000")),
        "chmod flag": key(replace(COPY, chmod="0755")),
        "destination": key(replace(COPY, dest="/srv/")),
        "arg value": key(args=(("A", "2"),)),
        "new arg": key(args=(("A", "1"), ("B", "x"))),
        "env": key(env=(("PATH", "/usr/bin"),)),
        "sources": key(sources="other"),
        "previous": step_key(start_key("scratch", Platform(), FORMAT), COPY, args=(("A", "1"),), env=(("PATH", "/bin"),),
                             sources="s"),
        "platform": step_key(start_key("sha256:" + "a" * 64, Platform("linux", "arm64"), FORMAT), COPY,
                             args=(("A", "1"),), env=(("PATH", "/bin"),), sources="s"),
    }
    for name, fmt in {"compression": ("zstd", None, None), "level": ("gzip", 1, None),
                      "reproducible": ("gzip", None, 0), "epoch": ("gzip", None, 1700000000)}.items():
        variants[name] = step_key(start_key("sha256:" + "a" * 64, Platform("linux", "amd64"), layer_format(*fmt)),
                                  COPY, args=(("A", "1"),), env=(("PATH", "/bin"),), sources="s")
    assert key() not in variants.values()
    assert len(set(variants.values())) == len(variants)


def test_sources_digest_sees_content_and_mode_not_mtime(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    target = tmp_path / "dir" / "f.txt"
    target.write_text("one")
    first = sources_digest(tmp_path, [tmp_path / "dir"])
    os.utime(target, (1, 1))
    assert sources_digest(tmp_path, [tmp_path / "dir"]) == first
    target.chmod(0o600)
    second = sources_digest(tmp_path, [tmp_path / "dir"])
    assert second != first
    target.write_text("two")
    assert sources_digest(tmp_path, [tmp_path / "dir"]) != second
    before_ignored = sources_digest(tmp_path, [tmp_path / "dir"])
    (tmp_path / "dir" / "ignored").write_text("x")
    assert sources_digest(tmp_path, [tmp_path / "dir"], lambda rel: rel.endswith("ignored")) == before_ignored
    assert sources_digest(tmp_path, [tmp_path / "dir"]) != before_ignored


def test_sources_digest_is_the_same_however_the_files_are_shared_out(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Files are hashed in runs on several threads: neither the runs nor the threads may change the digest."""
    tree = tmp_path / "dir"
    tree.mkdir()
    for n in range(700):  # more than one run of files
        (tree / f"f{n:03}").write_bytes(bytes([n % 251]) * n)
    (tree / "link").symlink_to("f001")
    shared = sources_digest(tmp_path, [tree])
    monkeypatch.setattr(cache_key, "_HASH_THREADS", 1)
    monkeypatch.setattr(cache_key, "_RUN_FILES", 1)
    assert sources_digest(tmp_path, [tree]) == shared
    (tree / "f698").write_bytes(b"changed")  # a file of the last run
    assert sources_digest(tmp_path, [tree]) != shared
