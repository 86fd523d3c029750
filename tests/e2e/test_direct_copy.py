"""A COPY written straight from the context gives the very layer the copy into the tree gives.

Each build has SOURCE_DATE_EPOCH: equal inputs, equal digests (the context's
files are older than it, so their times are in the layers, and what a copy
stamps "now" is clamped to it on both sides). The reference is
built in this process with direct COPYs turned off (every COPY copies into
the tree and is walked, as before); the same Dockerfile is then built with
them on, in this process and through the CLI (stacked on the layer store),
and all three digests must agree. The Dockerfile mixes COPYs that qualify
(new paths) with ones that do not (an existing file), steps that must see
the copied files (RUN, a WORKDIR inside them, a later stage copying from the
stage) and a WORKDIR that need not.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builder.engine import stage as stage_module
from builder.engine.build import build_image
from builder.engine.options import BuildOptions, OutputOptions
from builder.engine.registry_setup import registry_client
from builder.execution.isolation import resolve_isolation
from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry
from registry.options import RegistryOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the sandbox's RUN steps need root here")

EPOCH = 1_700_000_000
DOCKERFILE = """\
FROM {base} AS first
RUN mkdir -p /real /usr/local && ln -s /real /link && echo old > /etc/existing
COPY tree/ /newdir/
WORKDIR /elsewhere
WORKDIR /newdir/sub/deeper
COPY one.txt /newfile
COPY one.txt /etc/
COPY --chown=7:8 --chmod=0640 tree/ /a/b/c/
COPY tree /usr/local/app/
COPY one.txt /link/via-link
COPY one.txt /home/
COPY --chown=3 one.txt /var/lib/x/
COPY one.txt /etc/existing
RUN cat /newfile /a/b/c/hard1 > /seen && stat -c '%n %h %u:%g %a' /a/b/c/* >> /seen
COPY tree/ /late/
FROM {base}
COPY --from=first /late /from-first/
COPY tree/ /final/
WORKDIR /w
CMD ["sh"]
"""


def _context(tmp_path: Path, base: str) -> Path:
    context = tmp_path / "ctx"
    tree = context / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "inner.txt").write_text("inner\n")
    (tree / "hard1").write_text("linked\n")
    os.link(tree / "hard1", tree / "hard2")
    (tree / "link").symlink_to("sub/inner.txt")
    (tree / "ignored.log").write_text("never copied\n")
    os.chmod(tree / "sub", 0o700)
    # Times before EPOCH are kept in the layers (later ones are clamped to it): the copies' times count.
    for number, path in enumerate(sorted(tree.rglob("*"), reverse=True)):
        os.utime(path, (1_600_000_000 + number, 1_600_000_000 + number), follow_symlinks=False)
    (context / "one.txt").write_text("one\n")
    (context / ".dockerignore").write_text("**/*.log\n")
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    return context


def _in_process(context: Path, dest: str, registry: Registry, tmp_path: Path, name: str) -> tuple[str, str]:
    """The digests of the first stage's image and of the final one."""
    digests = []
    for target in ("first", None):
        options = BuildOptions(context=context, dockerfile=context / "Dockerfile", source_date_epoch=EPOCH,
                               quiet=True, output=OutputOptions(destinations=(dest,)), target=target,
                               cache_dir=tmp_path / f"cache-{name}",
                               isolation=resolve_isolation("sandbox", force=False, work_root=tmp_path))
        client = registry_client(RegistryOptions(insecure_registries=frozenset({registry.host})), quiet=True)
        digests.append(str(build_image(options, client=client).digest))
    return digests[0], digests[1]


def test_direct_copies_give_the_layers_of_copies_into_the_tree(registry_open: Registry, busybox_ref: str,
                                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    context = _context(tmp_path, busybox_ref)
    host = registry_open.host
    with monkeypatch.context() as patch:
        patch.setattr(stage_module, "try_direct_copy", lambda *args: False)
        reference = _in_process(context, f"{host}/direct/app:copied", registry_open, tmp_path, "copied")
    caplog.set_level("INFO", logger="wharfie")
    direct = _in_process(context, f"{host}/direct/app:direct", registry_open, tmp_path, "direct")
    # Both builds (--target first, then the whole file): all COPYs but /etc/existing and the --from.
    assert caplog.text.count("straight from the context") == 9 + 10
    # Placed for: the WORKDIR inside /newdir and each next COPY (7); the end of a stage others read (once).
    assert caplog.text.count("in the tree for the steps that read it") == 8 + 9
    assert direct == reference
    for target, digest in (("first", reference[0]), (None, reference[1])):
        cli = run_wharfie("build", str(context), "-d", f"{host}/direct/app:cli", "--insecure-registry", host,
                          "--cache-dir", str(tmp_path / "cache-cli"), *(["--target", target] if target else []),
                          env={"SOURCE_DATE_EPOCH": str(EPOCH)})
        assert cli.returncode == 0, cli.stderr
        assert f"@{digest}" in cli.stdout

    image = read_back(f"{host}/direct/app:cli", tmp_path / "rb", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["final/hard1"][:4] == ("file", 0o644, 0, 0) and "final/ignored.log" not in tree
    assert tree["final/link"] == ("link", 0o777, 0, 0, "sub/inner.txt")
    assert tree["final/sub"][:2] == ("dir", 0o700)
    assert os.stat(image.rootfs / "final/hard1").st_ino == os.stat(image.rootfs / "final/hard2").st_ino
    assert tree["from-first/sub/inner.txt"][4] == "inner\n"
