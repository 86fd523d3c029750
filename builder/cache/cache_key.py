"""Cache keys: the one definition of what makes a step's result reusable.

key(step) = sha256 over
- the previous step's key (the first key starts from the base image's manifest
  digest, the platform and the layer format, or from the base stage's last key);
- the instruction as parsed and expanded (not its line number, so adding a
  comment above it changes nothing);
- the ARG and ENV values the step can see: only the ARGs declared in the stage
  so far, so a per-build ARG declared late leaves earlier keys alone;
- for COPY/ADD, a digest of every selected source: relative path, type, mode,
  link target and content's sha256, never mtimes (owner and mode flags are in the
  instruction itself).

The layer format (`layer_format`: compression and level, and the timestamp
clamp of `--reproducible`/`SOURCE_DATE_EPOCH`) is in the first key because it
decides a layer's bytes as much as the step does: a layer cached by a plain
build must not answer a reproducible one, whose digest would then depend on
what ran before.

Lookup and store both call `step_key`, so they cannot disagree (kaniko #410).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from builder.frontend import instructions as ins
from oci.digest import sha256_stream
from oci.models import Platform

__all__ = ["KEY_VERSION", "layer_format", "sources_digest", "start_key", "step_key"]

KEY_VERSION = "wharfie-cache-v3"  # bump when the key's inputs change meaning
_NOT_IN_KEY = {"line", "end_line", "original"}


def _sha256(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def layer_format(compression: str, level: int | None, epoch: int | None) -> str:
    """Everything besides a step's inputs that changes its layer's bytes, as one key part."""
    return json.dumps({"compression": compression, "level": level, "epoch": epoch}, sort_keys=True)


def start_key(base: str, platform: Platform, layer_format: str) -> str:
    """The key before the first step: `base` is a manifest digest, "scratch" or a stage's last key."""
    return _sha256(KEY_VERSION, base, str(platform), layer_format)


def _fingerprint(instr: ins.Instruction) -> str:
    fields: dict[str, Any] = {f.name: getattr(instr, f.name) for f in dataclasses.fields(instr)
                              if f.name not in _NOT_IN_KEY}
    fields["keyword"] = instr.keyword
    return json.dumps(fields, sort_keys=True, default=_json_default)


def _json_default(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    return str(value)


def step_key(previous: str, instr: ins.Instruction, *, args: Iterable[tuple[str, str | None]],
             env: Iterable[tuple[str, str]], sources: str = "") -> str:
    """The key of a step, given the previous key and everything the step can see."""
    visible = json.dumps({"args": sorted(args, key=lambda kv: kv[0]),
                          "env": sorted(env)}, default=str)
    return _sha256(previous, _fingerprint(instr), visible, sources)


def sources_digest(root: Path, paths: Iterable[Path], excluded: Callable[[str], bool] | None = None) -> str:
    """A digest over the selected source trees: path, type, mode, link target and content's digest.

    Content is hashed file by file in a few threads (hashlib and file reads let go of the GIL), in
    runs of consecutive files so that small files do not pay a task each: a COPY of a large context
    is otherwise the longest part of a fully cached build.
    """
    entries = [entry for top in paths
               for entry in _walk_sorted(str(top), str(top.relative_to(root)) if top != root else ".", excluded)]
    digest = hashlib.sha256()
    with ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
        for run in pool.map(_contents, _runs(entries)):
            for (_, rel, st), content in run:
                digest.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode):o}\0".encode())
                digest.update(content.encode())
                digest.update(b"\0")
    return digest.hexdigest()


_HASH_THREADS = min(4, os.cpu_count() or 1)
_RUN_BYTES = 8 << 20  # a task hashes at least this much (or _RUN_FILES files) before the next one starts
_RUN_FILES = 256

_Entry = tuple[str, str, os.stat_result]  # path, path relative to the context root, lstat


def _walk_sorted(path: str, rel: str, excluded: Callable[[str], bool] | None) -> Iterator[_Entry]:
    st = os.lstat(path)
    yield path, rel, st
    if not stat.S_ISDIR(st.st_mode):
        return
    for name in sorted(os.listdir(path)):
        child = name if rel == "." else f"{rel}/{name}"
        if excluded is not None and excluded(child):
            continue
        yield from _walk_sorted(f"{path}/{name}", child, excluded)


def _runs(entries: list[_Entry]) -> Iterator[list[_Entry]]:
    run: list[_Entry] = []
    size = 0
    for entry in entries:
        run.append(entry)
        size += entry[2].st_size
        if size >= _RUN_BYTES or len(run) >= _RUN_FILES:
            yield run
            run, size = [], 0
    if run:
        yield run


def _contents(run: list[_Entry]) -> list[tuple[_Entry, str]]:
    """Each entry with what stands for its content: a link's target, a file's sha256, else nothing."""
    out = []
    for entry in run:
        path, _, st = entry
        if stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as handle:
                content = sha256_stream(handle)[0].hex
        else:
            content = ""
        out.append((entry, content))
    return out
