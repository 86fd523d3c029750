"""Stage trees stacked on the machine's unpacked layers give the very image a plain extraction gives.

The CLI stacks (it has a mount namespace of its own); `build_image` called
here, in the test's process, extracts as builds always did. Both build the
same Dockerfile with --reproducible: the digests must be equal. The store is
then checked untouched by a build that deletes and rewrites base files, and
shared by two builds started at once.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from builder.engine.build import build_image
from builder.engine.options import BuildOptions, OutputOptions
from builder.engine.registry_setup import registry_client
from builder.execution.isolation import resolve_isolation
from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry
from registry.options import RegistryOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="stacking needs overlay mounts (root, or a rootless build)")

DOCKERFILE = """\
FROM {base} AS first
RUN mkdir -p /data/sub && echo a > /data/a && echo b > /data/sub/b && ln /data/a /data/hard
RUN rm /data/a && chmod 700 /data/sub && echo more >> /data/hard && rm /etc/group
RUN rm -rf /data && mkdir /data && echo fresh > /data/fresh
COPY f.txt /data/f.txt
RUN cat /data/f.txt /data/fresh > /data/both && rm -rf /usr/sbin && mkdir /usr/sbin && echo x > /usr/sbin/x
WORKDIR /w
FROM first AS second
RUN find /data /usr/sbin /etc | sort > /listing && find / -xdev -type f | sort | xargs stat -c '%n %a %u %g %s %h' \
    >> /listing && rm /data/both && echo second > /etc/passwd
FROM {base}
COPY --from=second /listing /data/fresh /out/
COPY --from=first /data/both /out/
RUN ls /out > /out/names
"""


def _context(tmp_path: Path, base: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (context / "f.txt").write_text("from the context\n")
    return context


def _fingerprint(root: Path) -> str:
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(root)):
        for name in sorted([*dirnames, *filenames]):
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            digest.update(f"{path}:{st.st_mode}:{st.st_uid}:{st.st_gid}:{st.st_mtime_ns}:{st.st_nlink}".encode())
            if stat.S_ISREG(st.st_mode):
                digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def test_stacked_build_equals_the_extracted_one(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = _context(tmp_path, busybox_ref)
    stacked_ref, plain_ref = (f"{registry_open.host}/store/app:{tag}" for tag in ("stacked", "plain"))
    cache = tmp_path / "cache"
    result = run_wharfie("build", str(context), "-d", stacked_ref, "--insecure-registry", registry_open.host,
                         "--cache-dir", str(cache), "--reproducible", "-v", "debug")
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("layer dirs stacked") == 3, "each stage stacks (the second on the first)"
    options = BuildOptions(context=context, dockerfile=context / "Dockerfile", source_date_epoch=0, quiet=True,
                           output=OutputOptions(destinations=(plain_ref,)), cache_dir=tmp_path / "plain-cache",
                           isolation=resolve_isolation("sandbox", force=False, work_root=tmp_path))
    plain = build_image(options, client=registry_client(RegistryOptions(insecure_registries=frozenset({registry_open.host})), quiet=True))
    assert f"@{plain.digest}" in result.stdout, "the stacked build's image differs from the extracted one's"
    image = read_back(stacked_ref, tmp_path / "rb", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["out/names"][4] == "both\nfresh\nlisting\nnames\n"
    assert tree["out/both"][4] == "from the context\nfresh\n"
    listing = (image.rootfs / "out/listing").read_text().splitlines()
    assert "/data/sub" not in listing and "/etc/group" not in listing and "/usr/sbin/x" in listing
    assert "/data/hard" not in listing  # the third RUN replaced /data whole


def test_the_store_is_never_written_by_a_build(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN true\n")
    first = run_wharfie("build", str(context), "--no-push", "--insecure-registry", registry_open.host,
                        "--cache-dir", str(cache))
    assert first.returncode == 0, first.stderr
    store = cache / "unpacked" / "trusted"
    before = _fingerprint(store)
    passwd = next(store.glob("*/etc/passwd")).read_text()
    # Every way a step can touch a base file: delete, rewrite in place, chmod, chown, touch, hard link, rename.
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        "RUN rm /etc/group && echo evil >> /etc/passwd && chmod 777 /etc && chown 5:5 /bin/busybox "
        "&& touch -d @0 /etc/hosts.allow /etc/passwd && ln /bin/busybox /bb && mv /home /moved\n"
        "COPY Dockerfile /etc/passwd\n"
        "WORKDIR /etc\n")
    second = run_wharfie("build", str(context), "--no-push", "--insecure-registry", registry_open.host,
                         "--cache-dir", str(cache))
    assert second.returncode == 0, second.stderr
    assert _fingerprint(store) == before
    # And a third build sees the base as it was.
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN cat /etc/passwd > /seen && test -e /etc/group\n")
    third = run_wharfie("build", str(context), "-d", f"{registry_open.host}/store/third:1", "--insecure-registry",
                        registry_open.host, "--cache-dir", str(cache))
    assert third.returncode == 0, third.stderr
    image = read_back(f"{registry_open.host}/store/third:1", tmp_path / "rb", ["--src-tls-verify=false"])
    assert tree_of(image.rootfs)["seen"][4] == passwd


def test_two_builds_at_once_unpack_the_base_once(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    procs = []
    for name in ("one", "two"):
        context = tmp_path / name
        context.mkdir()
        (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo {name} > /name\n")
        procs.append(subprocess.Popen([sys.executable, "-m", "builder", "build", str(context), "-d",
                                       f"{registry_open.host}/store/{name}:1", "--insecure-registry",
                                       registry_open.host, "--cache-dir", str(cache)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert sum(err.count("into the layer store") for _out, err in outputs) == 1
    for name in ("one", "two"):
        image = read_back(f"{registry_open.host}/store/{name}:1", tmp_path / f"rb-{name}", ["--src-tls-verify=false"])
        assert tree_of(image.rootfs)["name"][4] == f"{name}\n"
