"""COPY, ADD and WORKDIR through symlinks the build controls: never a host file read, never one written.

COPY and ADD run on the host side, as root (or as the rootless user), with
the context, a stage's rootfs and the image's rootfs all plain host
directories. Every link the build controls must be followed as a chroot
would: in the context for sources, in the stage for `--from`, in the image
for destinations, WORKDIR and `--chown`'s /etc/passwd.

Sources: the context holds `lnk -> HOST_DIR` in every shape (absolute,
climbing `../`, a chain, a wildcard matching it, `--parents` through it,
`RUN --mount=type=bind,source=lnk`, `COPY --from` a stage that made it), and
the context also holds its own `HOST_DIR/secret`: every copy must get the
context's file, none the host's. Destinations: the image holds `/dst ->
HOST_TARGET` (and a link to a host file, and an /etc that links to a host
directory with a passwd of its own); every COPY, ADD, archive, WORKDIR and
--chown through them must leave the host directory empty, the host file as
it was, and read the image's own /etc.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest
from attack import Attacker, Link

from fixtures.readback import read_back, tree_of

HOST = "HOST-SECRET\n"
INSIDE = "the context's own copy\n"


def _tar(entries: list[tuple[str, bytes, str | None]]) -> bytes:
    """A tar of (name, content, symlink target or None)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, content, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            else:
                info.size, info.mode = len(content), 0o644
                tar.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def _host_dir(attacker: Attacker) -> Path:
    return attacker.directory("hostdir", {"secret": HOST, "sub/secret": HOST})


def test_sources_follow_links_inside_the_context(attacker: Attacker, busybox_ref: str, tmp_path: Path) -> None:
    host = _host_dir(attacker)
    rel = str(host).lstrip("/")
    climbing = "../" * 20 + rel
    dockerfile = f"""FROM {busybox_ref} AS linker
RUN mkdir -p {host} && printf "the context's own copy\\n" > {host}/secret && ln -s {host} /lnk
FROM {busybox_ref}
COPY abs/secret /out/abs
COPY rel/secret /out/rel
COPY chain/secret /out/chain
COPY ab*/secret /out/wild/
COPY abs/* /out/star/
COPY abs /out/whole/
COPY --parents abs/./sub/secret /out/parents/
ADD abs/secret /out/add
COPY --from=linker /lnk/secret /out/stage
RUN --mount=type=bind,source=abs,target=/m cat /m/secret > /out/bind
"""
    context = attacker.context(dockerfile, {
        "abs": Link(str(host)), "rel": Link(climbing), "chain": Link("hop"), "hop": Link(str(host)),
        f"{rel}/secret": INSIDE, f"{rel}/sub/secret": INSIDE,
    })
    dest = f"{attacker.registry_host}/attack/copy-sources-{attacker.mode}:1"
    result = attacker.build(context, push_to=dest)
    assert "HOST-SECRET" not in result.stderr
    assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    copied = {path: entry[4] for path, entry in tree.items() if path.startswith("out/") and entry[0] == "file"}
    assert copied, tree
    assert all(text == INSIDE for text in copied.values()), copied
    for expected in ("out/abs", "out/rel", "out/chain", "out/wild/secret", "out/star/secret", "out/whole/secret",
                     "out/parents/sub/secret", "out/add", "out/stage", "out/bind"):
        assert expected in copied, (expected, sorted(copied))


@pytest.mark.parametrize("source", ["abs/secret", "abs", "ab*/secret", "abs/*"],
                         ids=["file", "directory", "wildcard-dir", "wildcard-file"])
def test_a_link_to_a_host_path_missing_from_the_context_copies_nothing(attacker: Attacker, source: str) -> None:
    host = _host_dir(attacker)
    context = attacker.context(f"FROM scratch\nCOPY {source} /out/\n", {"abs": Link(str(host))})
    result = attacker.build(context)
    assert result.returncode != 0
    assert "HOST-SECRET" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert "Dockerfile:2" in result.stderr, result.stderr


def test_a_stage_link_to_a_host_path_copies_nothing(attacker: Attacker, busybox_ref: str) -> None:
    host = _host_dir(attacker)
    dockerfile = (f"FROM {busybox_ref} AS linker\nRUN ln -s {host} /lnk\n"
                  f"FROM scratch\nCOPY --from=linker /lnk/secret /stolen\n")
    result = attacker.build(attacker.context(dockerfile))
    assert result.returncode != 0
    assert "HOST-SECRET" not in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_destinations_follow_links_inside_the_image(attacker: Attacker, busybox_ref: str, tmp_path: Path) -> None:
    target = attacker.directory("target", {})
    host_file = attacker.directory("hostfile", {"file": "untouched\n"}) / "file"
    host_etc = attacker.directory("hostetc", {"passwd": "hostonly:x:4242:4242::/:/bin/sh\n",
                                              "group": "hostonly:x:4242:\n"})
    os.chmod(host_file, 0o600)
    archive = _tar([("lnk", b"", str(target)), ("lnk/from-archive", b"pwned\n", None),
                    ("x", b"archive file\n", None)])
    dockerfile = f"""FROM {busybox_ref}
RUN ln -s {target} /dst && ln -s {host_file} /dfile && mkdir -p /img && ln -s {target} /img/lnk
COPY f /dst/
COPY f /dst/sub/deeper/g
COPY dir/ /dst/
COPY f /dfile
COPY --chmod=4777 f /dst/chmodded
ADD archive.tar /dst/
ADD archive.tar /img/
COPY d1 d2 /multi/
WORKDIR /dst/made-by-workdir
COPY f ./via-workdir
"""
    context = attacker.context(dockerfile, {
        "f": "from the context\n", "dir/inner": "inner\n", "archive.tar": archive,
        "d1/x": Link(str(target)), "d2/x/pwn": "through a copied link\n",
    })
    dest = f"{attacker.registry_host}/attack/copy-dests-{attacker.mode}:1"
    result = attacker.build(context, push_to=dest)
    assert list(target.iterdir()) == [], f"a COPY/ADD/WORKDIR wrote to the host: {list(target.rglob('*'))}"
    assert host_file.read_text() == "untouched\n" and (host_file.stat().st_mode & 0o7777) == 0o600
    assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    inside = str(target).lstrip("/")
    for landed in ("f", "sub/deeper/g", "inner", "chmodded", "x", "made-by-workdir/via-workdir"):
        assert f"{inside}/{landed}" in tree, (landed, sorted(tree))
    assert tree[str(host_file).lstrip("/")][4] == "from the context\n"
    assert tree["multi/x/pwn"][0] == "file"

    # --chown and USER read the image's /etc, even when it is a link to a host directory.
    etc_link = _tar([("etc", b"", str(host_etc))])
    chown = "FROM scratch\nADD etc.tar /\nCOPY --chown=hostonly f /owned\n"
    refused = attacker.build(attacker.context(chown, {"f": "x\n", "etc.tar": etc_link}))
    assert refused.returncode != 0 and "unable to find user hostonly" in refused.stderr, refused.stderr


@pytest.mark.parametrize("shape", ["absolute", "climbing", "through-link"])
def test_an_add_archive_hard_link_never_reaches_a_host_file(attacker: Attacker, shape: str) -> None:
    host_file = attacker.directory("hostfile", {"file": "untouched\n"}) / "file"
    name = {"absolute": str(host_file), "climbing": "../" * 16 + str(host_file).lstrip("/"),
            "through-link": f"lnk/{host_file.name}"}[shape]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        if shape == "through-link":
            link = tarfile.TarInfo("lnk")
            link.type, link.linkname = tarfile.SYMTYPE, str(host_file.parent)
            tar.addfile(link)
        hard = tarfile.TarInfo("hl")
        hard.type, hard.linkname = tarfile.LNKTYPE, name
        tar.addfile(hard)
        write = tarfile.TarInfo("hl")  # then a write through the linked name
        data = b"pwned\n"
        write.size = len(data)
        tar.addfile(write, io.BytesIO(data))
    context = attacker.context("FROM scratch\nADD evil.tar /app/\n", {"evil.tar": buffer.getvalue()})
    result = attacker.build(context)
    assert host_file.read_text() == "untouched\n" and host_file.stat().st_nlink == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
