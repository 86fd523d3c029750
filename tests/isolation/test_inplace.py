"""In-place mode: its ignore list and clearing on a scratch dir, and whole builds in a throwaway root."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from throwaway_root import run_in_throwaway_root

from builder.execution.inplace import InPlaceRunner, clear_root, extract_filtered, in_place_ignore, is_ignored
from builder.execution.sandbox import Bind, RunSpec
from fixtures.readback import read_back, tree_of
from fixtures.registry import Registry


def test_ignore_list_keeps_kernel_tool_state_and_volumes(tmp_path: Path) -> None:
    ignore = in_place_ignore(work_dir=tmp_path / "work", cache_dir=Path("/cache"), context=Path("/ctx"),
                             extra=["/opt/keep/"])
    for must in ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname", "var/run/secrets",
                 "cache", "ctx", "opt/keep", str(tmp_path / "work").lstrip("/")):
        assert must in ignore, must
    assert is_ignored("proc/self/fd", ignore) and not is_ignored("procfoo", ignore)
    import builder
    assert is_ignored(os.path.dirname(os.path.dirname(builder.__file__)).lstrip("/"), ignore), "its own code"


def test_clear_root_keeps_ignored_paths_and_their_parents(tmp_path: Path) -> None:
    for rel in ("usr/bin/tool", "keep/me/file", "keep/other", "a/b/c/keepme/x", "a/b/gone", "top"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    (tmp_path / "link").symlink_to("/etc")
    clear_root(tmp_path, ("keep/me", "a/b/c/keepme"))
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == ["a", "a/b", "a/b/c", "a/b/c/keepme", "a/b/c/keepme/x", "keep", "keep/me", "keep/me/file"]


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return raw.getvalue()


class _Blob:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw

    def open_compressed(self) -> io.BytesIO:
        return io.BytesIO(self.raw)


def test_extract_filtered_skips_ignored_entries_and_whiteouts(tmp_path: Path) -> None:
    raw = _tar([
        ("etc", None), ("etc/hosts", b"image hosts"), ("etc/motd", b"hi"), ("proc", None), ("proc/x", b"no"),
        ("keep", b"a file where an ignored dir lives"), ("var", None), ("var/.wh.keepdir", b""), ("var/.wh.gone", b"")])

    root = tmp_path / "root"
    for rel in ("etc/hosts", "keep/inner/f", "var/keepdir/f", "var/gone"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("host")
    (tmp_path / "scratch").mkdir()
    extract_filtered(_Blob(raw), root,  # type: ignore[arg-type]
                     ("etc/hosts", "proc", "keep/inner", "var/keepdir"), tmp_path / "scratch")
    assert (root / "etc/hosts").read_text() == "host" and (root / "etc/motd").read_text() == "hi"
    assert not (root / "proc").exists() and (root / "keep/inner/f").exists() and (root / "var/keepdir/f").exists()
    assert not (root / "var/gone").exists()


def test_runner_emulates_mounts_and_puts_back_what_was_there(tmp_path: Path) -> None:
    root = Path("/")  # the runner only works on `/`; the targets below live in tmp_path
    secret = tmp_path / "secret"
    secret.write_text("s")
    os.chmod(secret, 0o400)
    cache = tmp_path / "cache"
    cache.mkdir()
    target_dir = tmp_path / "rootish"
    (target_dir / "existing").mkdir(parents=True)
    (target_dir / "existing" / "old").write_text("old")
    before = os.stat(target_dir).st_mtime_ns
    script = f"cat {target_dir}/run/s && ls {target_dir}/existing && echo n > {target_dir}/existing/new"
    spec = RunSpec(root=root, argv=["/bin/sh", "-c", script],
                   env={"PATH": "/usr/bin:/bin"}, binds=(Bind(str(secret), f"{target_dir}/run/s"),
                                                         Bind(str(cache), f"{target_dir}/existing", readonly=False)))
    lines: list[str] = []
    (tmp_path / "scratch").mkdir()
    InPlaceRunner((), tmp_path / "scratch")(spec, lines.append)
    assert lines == ["s"], "the secret is readable, and the cache hides what the target held"
    assert (cache / "new").read_text() == "n\n", "writes went to the cache directory"
    assert sorted(p.name for p in target_dir.iterdir()) == ["existing"], "placements undone"
    assert (target_dir / "existing" / "old").read_text() == "old"
    assert os.stat(target_dir).st_mtime_ns == before


@pytest.mark.skipif(os.geteuid() != 0, reason="a throwaway root needs root")
def test_in_place_refuses_outside_a_container_then_builds_with_force(registry_open: Registry, busybox_ref: str,
                                                                   tmp_path: Path) -> None:
    work = tmp_path / "work"
    context = work / "ctx"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN mkdir -p /opt/keep /opt/other && "
                                        "echo k > /opt/keep/x && echo o > /opt/other/y\n")
    dest = f"{registry_open.host}/inplace/force:1"
    args = ["build", str(context), "-d", dest, "--insecure-registry", registry_open.host, "--isolation", "in-place",
            "--cache-dir", str(work / "cache"), "--ignore-path", "/opt/keep"]
    refused = run_in_throwaway_root(args, base=tmp_path / "root1", cwd=work, volumes=[work],
                                    remove=["/.dockerenv", "/run/.containerenv"], env={"container": ""})
    assert refused.returncode == 1, refused.stderr
    assert "does not look like a container" in refused.stderr and "--force" in refused.stderr
    forced = run_in_throwaway_root([*args, "--force"], base=tmp_path / "root2", cwd=work, volumes=[work],
                                   remove=["/.dockerenv", "/run/.containerenv"], env={"container": ""})
    assert forced.returncode == 0, forced.stderr
    assert "isolation: in-place, RUN snapshots: walk; forced" in forced.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    assert tree["opt/other/y"][4] == "o\n" and "opt/keep/x" not in tree, "--ignore-path stays out of the layer"
