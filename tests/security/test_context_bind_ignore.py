"""`RUN --mount=type=bind` of the context shows only what .dockerignore lets through, as BuildKit does.

The attack: a Dockerfile binds the whole context (or a subdirectory of it)
and prints or bakes into the image what the context's owner excluded: a
`.env` with credentials, `.git/config` with a token in the remote URL. The
step must see the context as COPY sees it, and the host context must stay as
it was (no leftover view, no write through the bind).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from builder.context.dockerignore import IgnoreMatcher
from builder.execution.run_mounts import MountError, RunMounts
from builder.frontend import instructions as ins
from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry

TOKEN = f"glpat-{uuid.uuid4().hex}"


def _context(root: Path) -> Path:
    context = root / "ctx"
    for rel, text in ((".env", f"TOKEN={TOKEN}\n"), (".git/config", f"url = https://oauth2:{TOKEN}@example.invalid/x\n"),
                      ("app/main.py", "print('hi')\n"), ("app/.env", f"TOKEN={TOKEN}\n"),
                      ("app/cache/blob", TOKEN), ("app/keep.txt", "kept\n"), ("notes.log", TOKEN),
                      ("important.log", "re-included\n")):
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_text(text)
    (context / ".dockerignore").write_text(".env\n.git\n**/.env\napp/cache\n*.log\n!important.log\n")
    return context


def _snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    return {str(p.relative_to(root)): (p.lstat().st_mode, p.lstat().st_nlink, p.lstat().st_size)
            for p in sorted(root.rglob("*"))}


def _mounts(context: Path, tmp_path: Path, *mounts: ins.Mount) -> RunMounts:
    ignore = IgnoreMatcher((context / ".dockerignore").read_text().split())
    scratch = tmp_path / "scratch"
    scratch.mkdir(exist_ok=True)
    return RunMounts(tuple(mounts), workdir="/", context=context, cache_root=tmp_path / "cache", secrets={},
                     stage_root=lambda name: tmp_path, scratch=scratch, ignore=ignore)


def _listing(source: str) -> set[str]:
    root = Path(source)
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize("readonly", [True, False], ids=["ro", "rw"])
def test_the_bind_source_is_the_filtered_context(tmp_path: Path, readonly: bool) -> None:
    context = _context(tmp_path)
    before = _snapshot(context)
    with _mounts(context, tmp_path, ins.Mount(type="bind", target="/ctx", readonly=readonly),
                 ins.Mount(type="bind", target="/app", source="app", readonly=readonly)) as resolved:
        whole, app = (Path(b.source) for b in resolved.binds)
        assert _listing(str(whole)) == {".dockerignore", "app", "app/main.py", "app/keep.txt", "important.log"}
        assert _listing(str(app)) == {"main.py", "keep.txt"}
        assert (app / "keep.txt").read_text() == "kept\n"
        assert os.stat(app / "keep.txt").st_mode == os.stat(context / "app/keep.txt").st_mode
        if not readonly:  # a writable bind is a copy: writing to it never reaches the context
            (app / "keep.txt").write_text("scribbled")
    assert (context / "app/keep.txt").read_text() == "kept\n"
    assert _snapshot(context) == before
    assert not (tmp_path / "scratch" / "binds").exists(), "the views die with the step"


def test_an_ignored_source_is_not_found(tmp_path: Path) -> None:
    context = _context(tmp_path)
    for source in (".git", "app/.env", "app/cache", "notes.log"):
        mounts = _mounts(context, tmp_path, ins.Mount(type="bind", target="/x", source=source))
        with pytest.raises(MountError, match=f"{source} not found in the build context"), mounts:
            pass


def test_nothing_ignored_binds_the_context_itself(tmp_path: Path) -> None:
    """Without an excluded path below the source there is nothing to hide: no view is built."""
    context = _context(tmp_path)
    with _mounts(context, tmp_path, ins.Mount(type="bind", target="/x", source="app/main.py"),
                 ins.Mount(type="bind", target="/y", source=".dockerignore")) as resolved:
        assert [b.source for b in resolved.binds] == [str(context / "app/main.py"), str(context / ".dockerignore")]


@pytest.mark.skipif(os.geteuid() != 0, reason="builds as root (rootless: tests/isolation)")
def test_a_step_cannot_read_ignored_context_files(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = _context(tmp_path)
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        "RUN --mount=type=bind,target=/ctx (cd /ctx && find . | sort) > /seen-whole.txt; "
        "cat /ctx/.env /ctx/.git/config /ctx/notes.log > /stolen.txt 2>/dev/null; true\n"
        "RUN --mount=type=bind,target=/app,source=app,rw (cd /app && find . | sort) > /seen-app.txt; "
        "cat /app/.env /app/cache/blob >> /stolen.txt 2>/dev/null; true\n")
    before = _snapshot(context)
    dest = f"{registry_open.host}/security/context-bind:1"
    result = run_wharfie("build", str(context), "-d", dest, "--insecure-registry", registry_open.host,
                         "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    assert TOKEN not in tree["stolen.txt"][4]
    assert tree["seen-whole.txt"][4].split() == [".", "./.dockerignore", "./Dockerfile", "./app", "./app/keep.txt",
                                                   "./app/main.py", "./important.log"]
    assert tree["seen-app.txt"][4].split() == [".", "./keep.txt", "./main.py"]
    assert _snapshot(context) == before, "the host context changed"
    assert TOKEN not in result.stdout + result.stderr
