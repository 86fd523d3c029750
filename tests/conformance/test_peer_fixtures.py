"""The suite's own tools: the image comparison must see every difference it claims to, and buildah must leave no trace."""

from __future__ import annotations

import os
from pathlib import Path

from fixtures.buildah import Buildah
from fixtures.imagecompare import Entry, ImageView, compare, config_view, entry_from_spec, tree_view


def _tree(root: Path) -> None:
    (root / "dir/sub").mkdir(parents=True)
    (root / "dir/file").write_text("content\n")
    os.chmod(root / "dir/file", 0o4755)
    os.link(root / "dir/file", root / "hard")
    os.symlink("dir/file", root / "link")
    os.chown(root / "dir/sub", 12, 34)


def test_tree_view_records_type_mode_owner_content_links(tmp_path: Path) -> None:
    _tree(tmp_path)
    tree = tree_view(tmp_path)
    assert set(tree) == {"dir", "dir/sub", "dir/file", "hard", "link"}
    assert tree["dir/file"] == Entry("file", 0o4755, 0, 0, 8, tree["dir/file"].sha256, "", "dir/file")
    assert tree["hard"].hardlink == "dir/file" and tree["hard"].preview == "content\n"
    assert (tree["link"].type, tree["link"].link) == ("symlink", "dir/file")
    assert (tree["dir/sub"].uid, tree["dir/sub"].gid) == (12, 34)


def test_compare_lists_each_difference_readably(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        root.mkdir()
        _tree(root)
    (b / "dir/file").write_text("changed\n")  # both hardlinked names change
    os.chmod(b / "dir/sub", 0o700)
    (b / "extra/deep").mkdir(parents=True)
    (b / "extra/deep/x").write_text("x")
    os.unlink(b / "hard")
    found = compare(ImageView(tree_view(a), {"Cmd": ["sh"]}), ImageView(tree_view(b), {}))
    assert found[0] == 'config Cmd: buildah ["sh"] != wharfie <unset>'
    assert "dir/file: content buildah 'content\\n' != wharfie 'changed\\n', hardlink buildah 'dir/file' != wharfie ''" \
        in found
    assert "dir/sub: mode buildah 0755 != wharfie 0700" in found
    assert "only in wharfie: extra (dir 0755 0:0) (and 2 entries under it)" in found
    assert any(line.startswith("only in buildah: hard (file 4755 0:0 8B") for line in found)
    assert len(found) == 5, found


def test_config_view_treats_unset_null_and_empty_alike() -> None:
    docker = {"config": {"Cmd": None, "Labels": {}, "Volumes": None, "Entrypoint": [], "Env": ["A=1"],
                         "Healthcheck": {"Test": ["CMD", "true"], "Interval": 0, "Retries": 0}},
              "author": "", "rootfs": {}}
    assert config_view(docker) == {"Env": ["A=1"], "Healthcheck": {"Test": ["CMD", "true"]}}
    assert config_view({"config": {"User": "app"}, "author": "me"}) == {"User": "app", "author": "me"}


def test_entry_from_spec_corrects_only_what_it_names() -> None:
    base = Entry("dir", 0o700, 5, 6)
    assert entry_from_spec({"uid": 0}, base) == Entry("dir", 0o700, 0, 6)
    made = entry_from_spec({"content": "hi\n"})
    assert (made.type, made.mode, made.size, made.preview) == ("file", 0o644, 3, "hi\n")
    assert entry_from_spec({"type": "dir"}, Entry("file", 0o600)) == Entry("dir", 0o755)


def test_buildah_keeps_everything_in_its_own_directory() -> None:
    with Buildah() as buildah:
        workdir = buildah.workdir
        assert buildah.run("images", "--quiet").returncode == 0
        env = buildah.env()
        for key in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE",
                    "TMPDIR"):
            assert env[key].startswith(str(workdir)), key
        assert (workdir / "root").is_dir()
    assert not workdir.exists()
