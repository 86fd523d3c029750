"""Which sources a COPY selects: wildcards as BuildKit finds them (globmatch.has_wildcards, fsutil's
splitWildcards: a path is literal up to its first wildcard component, matched from there on)."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.steps.copy import select_sources
from oci.errors import WharfieError


def test_wildcards_and_escapes(tmp_path: Path) -> None:
    for name in ("a.txt", "b.txt", "star*name", "a\\*b"):
        (tmp_path / name).write_text(name)
    for directory in ("dir[x]", "dir\\[x]"):
        (tmp_path / directory).mkdir()
        (tmp_path / directory / "in.txt").write_text(directory)

    def names(pattern: str) -> list[str]:
        return [str(p.relative_to(tmp_path)) for p in select_sources(tmp_path, [pattern], what="COPY")]

    assert names("*.txt") == ["a.txt", "b.txt"]
    assert names("a\\*b") == ["a\\*b"], "without a wildcard the name is taken as written"
    assert names("dir\\[x]/*.txt") == ["dir\\[x]/in.txt"], "literal up to the first wildcard"
    assert names("s*\\*name") == ["star*name"], "past a wildcard an escape is undone by the matcher"
    with pytest.raises(WharfieError, match="no such file"):
        names("star\\*name")
