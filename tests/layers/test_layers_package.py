"""The package's boundaries: its public names, and that it never reaches into builder/ or registry/."""

from __future__ import annotations

import ast
from pathlib import Path

import layers

LAYERS = Path(layers.__file__).parent


def test_public_names() -> None:
    assert sorted(layers.__all__) == sorted([
        "Change", "Snapshot", "diff", "write_layer", "write_tree_layer", "extract_layer", "open_decompressed",
        "changes_from_upper", "mount_overlay", "unmount", "overlay_supported", "StepSnapshot", "snapshot_step",
        "mount_points", "merge_upper",
    ])
    for name in layers.__all__:
        assert getattr(layers, name) is not None


def test_imports_nothing_from_builder_or_registry() -> None:
    for source in LAYERS.glob("*.py"):
        tree = ast.parse(source.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in ("builder", "registry"), f"{source.name} imports {name}"


def test_no_prints_in_library_code() -> None:
    for source in LAYERS.glob("*.py"):
        tree = ast.parse(source.read_text())
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", "") == "print"]
        assert not calls, f"{source.name} prints"
