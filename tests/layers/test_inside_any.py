"""`inside_any`: strictly below one of the directories, by path components (not by a string prefix)."""

from __future__ import annotations

from layers.changes import inside_any


def test_below_means_by_components() -> None:
    moved = {"usr/lib", "opt"}
    assert inside_any("usr/lib/x", moved) and inside_any("opt/a/b/c", moved)
    assert not inside_any("usr/lib", moved), "the directory itself is not below itself"
    assert not inside_any("usr/lib64/x", moved) and not inside_any("optional", moved)
    assert not inside_any("usr", moved) and not inside_any("anything", set())

