"""kaniko's --single-snapshot in place (issue #12): one layer per stage, taken over `/` in a throwaway root."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from throwaway_root import run_in_throwaway_root

from fixtures.readback import read_back, skopeo_inspect, tree_of
from fixtures.registry import Registry


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="a throwaway root needs root")
def test_single_snapshot_in_place(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    work = tmp_path / "work"
    context = work / "ctx"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo a > /a && mkdir /d && echo x > /d/x\n"
                                        "RUN rm /bin/vi /d/x\nCOPY f /f\n")
    (context / "f").write_text("f\n")
    dest = f"{registry_open.host}/inplace/single:1"
    args = ["build", str(context), "-d", dest, "--insecure-registry", registry_open.host, "--isolation", "in-place",
            "--force", "--single-snapshot", "--cache-dir", str(work / "cache")]
    result = run_in_throwaway_root(args, base=tmp_path / "root", cwd=work, volumes=[work])
    assert result.returncode == 0, result.stderr
    image = read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"])
    base_layers = len(skopeo_inspect(busybox_ref, ["--tls-verify=false"])["Layers"])
    assert len(image.manifest["layers"]) == base_layers + 1
    tree = tree_of(image.rootfs)
    assert tree["a"][4] == "a\n" and tree["f"][4] == "f\n" and tree["d"][0] == "dir"
    assert "bin/vi" not in tree and "d/x" not in tree
    assert not any(path.startswith(("proc/", "work", str(work).lstrip("/"))) for path in tree), \
        "nothing of the job container's own"
