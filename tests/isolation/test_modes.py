"""The same multi-stage Dockerfile built in every isolation mode gives the same image tree.

Modes: sandbox as root (overlay snapshots, and the walk), rootless as a user
with subordinate ids, and in place inside a throwaway root. Every image is
pushed, read back with skopeo + umoci, checked (users, owners, deletions,
cache mount, secret) and compared with the others; the secret must not be in
any blob.
"""

from __future__ import annotations

import gzip
import os
import shutil
import uuid
from pathlib import Path

import pytest
from rootless_user import throwaway_user, userns_forbidden_reason
from throwaway_root import run_in_throwaway_root

from builder.engine.build import build_image
from builder.engine.options import BuildOptions, OutputOptions
from builder.engine.registry_setup import registry_client
from builder.execution.isolation import Isolation
from builder.execution.run_mounts import SecretSource
from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry
from registry.options import RegistryOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the suite sets up users and throwaway roots as root")

DOCKERFILE = """\
FROM {base} AS build
RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1000:' >> /etc/group && \\
    echo 'svc:x:1001:1002::/home/svc:/bin/sh' >> /etc/passwd && echo 'svcgrp:x:1002:' >> /etc/group && \\
    mkdir -p /home/app /home/svc /out && chown 1000:1000 /home/app && chown 1001:1002 /home/svc /out
RUN --mount=type=cache,target=/cache,id=multistage \\
    n=$(cat /cache/n 2>/dev/null || echo 0); echo $((n+1)) > /cache/n; echo "cache run $((n+1))" > /out/cache-1.txt
RUN --mount=type=cache,target=/cache,id=multistage \\
    n=$(cat /cache/n); echo $((n+1)) > /cache/n; echo "cache run $((n+1))" > /out/cache-2.txt
USER app
RUN echo "built by $(id -u):$(id -g) home=$HOME" > /home/app/who.txt
USER root
RUN --mount=type=secret,id=token wc -c < /run/secrets/token > /out/secret-len.txt && \\
    stat -c '%a %u' /run/secrets/token > /out/secret-meta.txt
RUN rm -rf /bin/vi /usr/sbin && chown -R 1001:1002 /out

FROM {base}
COPY --from=build /etc/passwd /etc/group /etc/
COPY --from=build --chown=1000:1000 /home/app /home/app
COPY --from=build /out /out
RUN rm /bin/vi && mkdir /data && chown 1001:1002 /data
RUN --mount=type=bind,from=build,source=/home/app,target=/from-build cp /from-build/who.txt /data/who-copy.txt
USER app
RUN echo "final as $(id -u)" > /home/app/final.txt
"""


def _context(directory: Path, base: str, secret: str) -> tuple[Path, Path]:
    context = directory / "ctx"
    context.mkdir(parents=True)
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    secret_file = directory / "secret.txt"
    secret_file.write_text(secret)
    return context, secret_file


def _blobs(layout: Path) -> list[bytes]:
    out = []
    for blob in (layout / "blobs" / "sha256").iterdir():
        raw = blob.read_bytes()
        out += [raw, gzip.decompress(raw)] if raw[:2] == b"\x1f\x8b" else [raw]
    return out


def _check(dest: str, workdir: Path, secret: str) -> dict[str, tuple[str, int, int, int, str]]:
    image = read_back(dest, workdir, ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["home/app"][:4] == ("dir", 0o755, 1000, 1000)
    assert tree["home/app/who.txt"][2:] == (1000, 1000, "built by 1000:1000 home=/home/app\n")
    assert tree["home/app/final.txt"][2:] == (1000, 1000, "final as 1000\n")
    assert tree["out"][2:4] == (0, 0), "COPY --from without --chown gives the files to root"
    assert tree["out/cache-1.txt"][4] == "cache run 1\n"
    assert tree["out/cache-2.txt"][4] == "cache run 2\n", "the cache mount must persist between steps"
    assert tree["out/secret-len.txt"][4].strip() == str(len(secret))
    assert tree["out/secret-meta.txt"][4] == "400 0\n"
    assert tree["data"][:4] == ("dir", 0o755, 1001, 1002)
    assert tree["data/who-copy.txt"][4] == "built by 1000:1000 home=/home/app\n", "RUN --mount from a stage"
    assert "from-build" not in tree
    assert "bin/vi" not in tree and "bin/sh" in tree
    assert not any(p == "cache" or p.startswith(("run/", "cache/")) for p in tree), "mount points leaked"
    assert any(line.startswith("app:x:1000:1000") for line in tree["etc/passwd"][4].splitlines())
    for blob in _blobs(image.layout):
        assert secret.encode() not in blob, f"the secret reached the image {dest}"
    return tree


def _sandbox_cli(registry: Registry, base: str, tmp: Path, secret: str) -> str:
    context, secret_file = _context(tmp / "sandbox", base, secret)
    dest = f"{registry.host}/modes/multi:sandbox"
    result = run_wharfie("build", str(context), "-d", dest, "--insecure-registry", registry.host,
                         "--isolation", "sandbox", "--cache-dir", str(tmp / "sandbox" / "cache"),
                         "--secret", f"id=token,src={secret_file}")
    assert result.returncode == 0, result.stderr
    assert "isolation: sandbox, RUN snapshots: overlay" in result.stderr
    assert secret not in result.stdout + result.stderr
    return dest


def _sandbox_walk(registry: Registry, base: str, tmp: Path, secret: str) -> str:
    context, secret_file = _context(tmp / "walk", base, secret)
    dest = f"{registry.host}/modes/multi:walk"
    options = BuildOptions(context=context, dockerfile=context / "Dockerfile",
                           output=OutputOptions(destinations=(dest,)), cache_dir=tmp / "walk" / "cache",
                           isolation=Isolation("sandbox", snapshotter="walk"), quiet=True,
                           secrets=(SecretSource("token", path=secret_file),))
    build_image(options, client=registry_client(RegistryOptions(insecure_registries=frozenset({registry.host})), quiet=True))
    return dest


def _rootless(registry: Registry, base: str, secret: str) -> str:
    with throwaway_user(subids=True) as user:
        context, secret_file = _context(user.home / "b", base, secret)
        for path in (user.home / "b", context, context / "Dockerfile", secret_file):
            os.chown(path, user.uid, user.gid)
        dest = f"{registry.host}/modes/multi:rootless"
        result = user.run(["build", str(context), "-d", dest, "--insecure-registry", registry.host,
                           "--cache-dir", str(user.home / "cache"), "--secret", f"id=token,src={secret_file}"])
        assert result.returncode == 0, result.stderr
        assert "rootless (uid" in result.stderr and "subordinate ids" in result.stderr
    return dest


def _in_place(registry: Registry, base: str, tmp: Path, secret: str) -> str:
    context, secret_file = _context(tmp / "inplace", base, secret)
    dest = f"{registry.host}/modes/multi:in-place"
    result = run_in_throwaway_root(
        ["build", str(context), "-d", dest, "--insecure-registry", registry.host, "--isolation", "in-place",
         "--cache-dir", str(tmp / "inplace" / "cache"), "--secret", f"id=token,src={secret_file}"],
        base=tmp / "root", cwd=tmp, volumes=[tmp / "inplace"])
    assert result.returncode == 0, result.stderr
    assert "isolation: in-place" in result.stderr
    assert secret not in result.stdout + result.stderr
    return dest


def test_multistage_tree_is_the_same_in_every_mode(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    secret = f"S3cr3t-{uuid.uuid4().hex}"
    built = {
        "sandbox": _sandbox_cli(registry_open, busybox_ref, tmp_path, secret),
        "walk": _sandbox_walk(registry_open, busybox_ref, tmp_path, secret),
        "in-place": _in_place(registry_open, busybox_ref, tmp_path, secret),
    }
    skipped = userns_forbidden_reason()
    if skipped is None:
        built["rootless"] = _rootless(registry_open, busybox_ref, secret)
    else:
        print(f"rootless mode not compared: {skipped}")
    trees = {mode: _check(dest, tmp_path / f"rb-{mode}", secret) for mode, dest in built.items()}
    reference = trees.pop("sandbox")
    for mode, tree in trees.items():
        only_ref = sorted(set(reference) - set(tree))
        only_mode = sorted(set(tree) - set(reference))
        differ = sorted(p for p in set(reference) & set(tree) if reference[p] != tree[p])
        assert not (only_ref or only_mode or differ), (
            f"{mode} differs from sandbox: only in sandbox {only_ref[:5]}, only in {mode} {only_mode[:5]}, "
            f"different {[(p, reference[p], tree[p]) for p in differ[:5]]}")
    shutil.rmtree(tmp_path / "root", ignore_errors=True)
