"""RUN --mount in real builds, pushed and read back: what the step saw, and that no mount leaks into the image."""

from __future__ import annotations

import gzip
import os
import uuid
from pathlib import Path

import pytest

from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="builds as root (rootless: tests/isolation)")

DOCKERFILE = """\
FROM {base} AS tools
RUN mkdir -p /opt/tools && echo tool-v1 > /opt/tools/version

FROM {base}
RUN --mount=type=bind,target=/ctx cat /ctx/input.txt > /from-context.txt && \\
    (touch /ctx/new 2>/dev/null && echo 'bind-ro: WROTE' || echo 'bind-ro: blocked')
RUN --mount=type=bind,target=/ctx,rw touch /ctx/scribble && echo 'bind-rw: ok'
RUN --mount=type=bind,from=tools,source=/opt/tools,target=/tools cp /tools/version /tool-version.txt
RUN --mount=type=cache,target=/var/cache/app,id=appcache \\
    n=$(cat /var/cache/app/count 2>/dev/null || echo 0); echo $((n+1)) > /var/cache/app/count; \\
    cp /var/cache/app/count /cache-count.txt
RUN --mount=type=tmpfs,target=/scratch echo temp > /scratch/t && grep -q ' /scratch tmpfs' /proc/mounts && \\
    echo 'tmpfs: ok'
RUN --mount=type=secret,id=token stat -c '%a %u %g' /run/secrets/token > /secret-meta.txt && \\
    wc -c < /run/secrets/token > /secret-len.txt && \\
    (echo x >> /run/secrets/token 2>/dev/null && echo 'secret: WRITABLE' || echo 'secret: read-only')
RUN --mount=type=secret,id=envtok,env=ENVTOK echo "env-secret: ${{#ENVTOK}} ${{ENVTOK%%-*}}"
"""


def _build(context: Path, dest: str, registry: Registry, cache: Path, secret_file: Path, env_secret: str):
    return run_wharfie("build", str(context), "-d", dest, "--insecure-registry", registry.host,
                       "--cache-dir", str(cache), "--secret", f"id=token,src={secret_file}",
                       "--secret", "id=envtok,env=WHARFIE_T_ENVTOK",
                       env={"WHARFIE_T_ENVTOK": env_secret})


def _all_blob_bytes(layout: Path) -> list[bytes]:
    out = []
    for blob in (layout / "blobs" / "sha256").iterdir():
        raw = blob.read_bytes()
        out.append(raw)
        if raw[:2] == b"\x1f\x8b":
            out.append(gzip.decompress(raw))
    return out


def test_mounts_in_a_build_and_nothing_leaks(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=busybox_ref))
    (context / "input.txt").write_text("from the context\n")
    secret = f"S3cr3t-{uuid.uuid4().hex}"
    env_secret = f"EnvS3cr3t-{uuid.uuid4().hex}"
    (tmp_path / "secret.txt").write_text(secret)
    cache = tmp_path / "cache"
    dest = f"{registry_open.host}/sandbox/mounts:1"

    first = _build(context, dest, registry_open, cache, tmp_path / "secret.txt", env_secret)
    assert first.returncode == 0, first.stderr
    image = read_back(dest, tmp_path / "rb1", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    log = first.stdout + first.stderr
    for line in ("bind-ro: blocked", "bind-rw: ok", "tmpfs: ok", "secret: read-only",
                 f"env-secret: {len(env_secret)} EnvS3cr3t"):
        assert line in log.splitlines(), log
    assert tree["from-context.txt"][4] == "from the context\n"
    assert not (context / "scribble").exists() and not (context / "new").exists(), "bind writes must be discarded"
    assert tree["tool-version.txt"][4] == "tool-v1\n"
    assert tree["cache-count.txt"][4] == "1\n"
    assert tree["secret-meta.txt"][4] == "400 0 0\n"
    assert tree["secret-len.txt"][4].strip() == str(len(secret))
    for leaked in ("ctx", "tools", "scratch", "run", "var/cache/app", "var/cache"):
        assert leaked not in tree, f"mount point {leaked} leaked into the image"

    assert secret not in log and env_secret not in log
    for blob in _all_blob_bytes(image.layout):
        assert secret.encode() not in blob and env_secret.encode() not in blob, "a secret reached the image"

    second = _build(context, dest, registry_open, cache, tmp_path / "secret.txt", env_secret)
    assert second.returncode == 0, second.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb2", ["--src-tls-verify=false"]).rootfs)
    assert tree["cache-count.txt"][4] == "2\n", "the cache mount must persist between builds"


def test_mount_targets_never_follow_image_symlinks_to_the_host(registry_open: Registry, busybox_ref: str,
                                                                tmp_path: Path) -> None:
    host_dir = Path(f"/tmp/wharfie-mnt-{uuid.uuid4().hex}")
    host_dir.mkdir()
    try:
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text(
            f"FROM {busybox_ref}\n"
            f"RUN ln -s {host_dir} /run && ln -s {host_dir} /work\n"
            "WORKDIR /\n"
            "RUN --mount=type=secret,id=token --mount=type=tmpfs,target=/work/t ls /run/ > /seen.txt\n"
        )
        (tmp_path / "secret.txt").write_text("x")
        result = run_wharfie("build", str(context), "--no-push", "--insecure-registry", registry_open.host,
                             "--cache-dir", str(tmp_path / "cache"), "--secret", f"id=token,src={tmp_path / 'secret.txt'}")
        assert result.returncode == 0, result.stderr
        assert list(host_dir.iterdir()) == [], "a mount point was created on the host through an image symlink"
    finally:
        for child in host_dir.iterdir():
            os.system(f"rm -rf {child}")
        host_dir.rmdir()
