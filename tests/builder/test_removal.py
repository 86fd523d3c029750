"""BackgroundRemoval: finished stage trees go while the push ends; join() returns when they are gone."""

from __future__ import annotations

from pathlib import Path

from builder.engine.removal import BackgroundRemoval


def _tree(root: Path) -> Path:
    for i in range(50):
        (root / f"d{i % 5}").mkdir(parents=True, exist_ok=True)
        (root / f"d{i % 5}" / f"f{i}").write_bytes(b"x" * i)
    (root / "link").symlink_to("/etc")  # removed as a link: what it points to stays
    return root


def test_trees_are_gone_after_join_and_link_targets_stay(tmp_path: Path) -> None:
    trees = [_tree(tmp_path / "stage-0"), _tree(tmp_path / "stage-1")]
    removal = BackgroundRemoval()
    removal.start(iter(trees))
    removal.join()
    assert not any(tree.exists() for tree in trees)
    assert Path("/etc/passwd").exists()


def test_nothing_to_remove(tmp_path: Path) -> None:
    removal = BackgroundRemoval()
    removal.start([])
    removal.join()
    assert list(tmp_path.iterdir()) == []
