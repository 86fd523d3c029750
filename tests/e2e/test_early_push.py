"""Layers go to the destination while the build still runs; the manifest only at the end (issue #14).

The build is held before its last step by a secret read from a FIFO: the
build reads it when the step starts, and blocks until the test writes. While
it waits, the destination repository must already hold the base layer
(mounted) and the COPY's layer (uploaded), and no manifest.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from fixtures.net import wait_until
from fixtures.readback import read_back, run_wharfie, skopeo_inspect
from fixtures.registry import Registry


def _repo_layers(registry: Registry, repo: str) -> set[str]:
    """The blobs linked into `repo`, read from the registry's storage (not through the API under test)."""
    links = registry.storage_dir / "docker/registry/v2/repositories" / repo / "_layers/sha256"
    return {f"sha256:{name}" for name in os.listdir(links)} if links.is_dir() else set()


def _tags(registry: Registry, repo: str) -> list[str]:
    tags = registry.storage_dir / "docker/registry/v2/repositories" / repo / "_manifests/tags"
    return os.listdir(tags) if tags.is_dir() else []


def test_layers_are_in_the_destination_before_the_build_ends(registry_open: Registry, busybox_ref: str,
                                                             tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "data").write_bytes(os.urandom(300_000))
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY data /data\n"
                                        "RUN --mount=type=secret,id=gate echo done > /done\n")
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    repo = "early/app"
    proc = subprocess.Popen([sys.executable, "-m", "builder", "build", str(context), "-d", f"{registry_open.host}/{repo}:1",
                             "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path / "cache"),
                             "--secret", f"id=gate,src={gate}", "--digest-file", str(tmp_path / "digest")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # Two layers (busybox's, the COPY's) while the build waits for the gate before its RUN step.
        wait_until(lambda: len(_repo_layers(registry_open, repo)) >= 2 or proc.poll() is not None, timeout=120,
                   what="the layers in the destination")
        assert proc.poll() is None, proc.communicate()
        early = _repo_layers(registry_open, repo)
        assert _tags(registry_open, repo) == []  # no manifest before the build is done
    finally:
        # Writing the FIFO lets the build read its secret and go on; the writer blocks until it does.
        writer = threading.Thread(target=gate.write_text, args=("open",), daemon=True)
        writer.start()
        _out, err = proc.communicate(timeout=300)
        if writer.is_alive():  # the build ended without reading the gate: be its reader, so the writer ends
            reader = os.open(gate, os.O_RDONLY | os.O_NONBLOCK)
            writer.join()
            os.close(reader)
    assert proc.returncode == 0, err
    image = skopeo_inspect(f"{registry_open.host}/{repo}:1", ["--tls-verify=false"], raw=True)
    layers = [layer["digest"] for layer in image["layers"]]
    assert len(layers) == 3
    assert early == set(layers[:2])  # the base's and the COPY's, not pushed again at the end
    assert _repo_layers(registry_open, repo) == {*layers, image["config"]["digest"]}


def test_a_failing_step_after_pushed_layers_leaves_no_tag(registry_open: Registry, busybox_ref: str,
                                                          tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "data").write_bytes(os.urandom(50_000))
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY data /data\nRUN exit 3\n")
    repo = "early/failing"
    result = run_wharfie("build", str(context), "-d", f"{registry_open.host}/{repo}:1", "--insecure-registry",
                         registry_open.host, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1
    assert "RUN failed (exit 3)" in result.stderr and "Traceback" not in result.stderr
    assert _tags(registry_open, repo) == []


def test_large_layers_go_up_while_they_are_written(registry_open: Registry, busybox_ref: str,
                                                   tmp_path: Path) -> None:
    """A COPY's and a RUN's layer larger than an upload chunk (16 MiB) are uploaded as they are compressed;
    the image read back by skopeo and umoci holds exactly the files, and no upload session is left open."""
    context = tmp_path / "ctx"
    context.mkdir()
    data = os.urandom(20 << 20)  # random: gzip cannot shrink it below a chunk
    (context / "big.bin").write_bytes(data)
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY big.bin /big.bin\n"
                                        "RUN head -c 18874368 /dev/urandom > /made.bin\n")
    repo = "early/streamed"
    ref = f"{registry_open.host}/{repo}:1"
    result = run_wharfie("build", str(context), "-d", ref, "--insecure-registry", registry_open.host,
                         "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    streamed = [line for line in result.stderr.splitlines() if "(a layer while it was written)" in line]
    assert len(streamed) == 2 and all(line.startswith("pushed ") for line in streamed), result.stderr
    image = read_back(ref, tmp_path / "rb", ["--src-tls-verify=false"])
    assert (image.rootfs / "big.bin").read_bytes() == data
    assert (image.rootfs / "made.bin").stat().st_size == 18874368
    uploads = registry_open.storage_dir / "docker/registry/v2/repositories" / repo / "_uploads"
    assert not uploads.exists() or os.listdir(uploads) == [], "an upload session was left open"
