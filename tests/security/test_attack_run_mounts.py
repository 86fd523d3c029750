"""RUN --mount sources and ids that try to climb out: `..` in a bind's source (context and stage), a
cache id shaped like a path, a secret target under /proc, and the mount types wharfie does not offer.

The host check: a host directory next to the context, with a secret in it,
is never what the step sees; a cache id never makes a directory outside
`--cache-dir/mounts`; and nothing written through a secret's target reaches
the kernel's settings.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from attack import Attacker

SECRET = "HOST-SECRET-NEXT-TO-THE-CONTEXT"


@pytest.mark.parametrize("source", ["../{host}", "../../../../../../../../..{host_abs}", "{host_abs}"],
                         ids=["sibling", "climbing", "absolute"])
def test_a_bind_source_never_leaves_the_context(attacker: Attacker, busybox_ref: str, source: str) -> None:
    host = attacker.directory("hostdir", {"secret": SECRET})
    named = source.format(host=host.name, host_abs=str(host))
    context = attacker.context(f"FROM {busybox_ref}\nRUN --mount=type=bind,source={named},target=/m cat /m/secret\n")
    result = attacker.build(context)
    assert SECRET not in result.stderr, f"the step read a host directory through source={named}"
    assert result.returncode != 0 and "not found in the build context" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_stage_bind_source_never_leaves_the_stage(attacker: Attacker, busybox_ref: str) -> None:
    host = attacker.directory("hostdir", {"secret": SECRET})
    climbing = "../" * 12 + str(host).lstrip("/")
    dockerfile = (f"FROM {busybox_ref} AS other\nRUN ln -s {host} /lnk\n"
                  f"FROM {busybox_ref}\n"
                  f"RUN --mount=type=bind,from=other,source={climbing},target=/a cat /a/secret || true\n"
                  f"RUN --mount=type=bind,from=other,source=/lnk,target=/b cat /b/secret || true\n")
    result = attacker.build(attacker.context(dockerfile))
    assert SECRET not in result.stderr, "a step read a host directory through a stage's bind"
    assert "Traceback" not in result.stderr


def test_a_cache_id_is_a_name_not_a_path(attacker: Attacker, busybox_ref: str) -> None:
    escape = attacker.path("made-by-cache-id")
    cache = attacker.home / "cache"
    climbing = "../" * 12 + str(escape).lstrip("/")
    dockerfile = (f"FROM {busybox_ref}\n"
                  f"RUN --mount=type=cache,id={climbing},target=/c touch /c/planted\n"
                  f"RUN --mount=type=cache,id={escape},target=/d touch /d/planted\n")
    result = attacker.build(attacker.context(dockerfile), cache=cache)
    assert result.returncode == 0, result.stderr
    assert not escape.exists(), "a cache id made a directory outside --cache-dir"
    planted = sorted(path.relative_to(cache).parts[0] for path in cache.rglob("planted"))
    assert planted == ["mounts", "mounts"], planted


def test_a_secret_target_under_proc_changes_no_kernel_setting(attacker: Attacker, busybox_ref: str,
                                                              tmp_path: Path) -> None:
    before = Path("/proc/sys/kernel/core_pattern").read_text()
    secret = tmp_path / "secret"
    secret.write_text("|/tmp/wharfie-pwned-core %p\n")
    if attacker.mode == "rootless":
        secret = attacker.home / "secret"
        secret.write_text("|/tmp/wharfie-pwned-core %p\n")
        os.chown(secret, attacker.uid, attacker.gid)
    dockerfile = (f"FROM {busybox_ref}\n"
                  "RUN --mount=type=secret,id=s,target=/proc/sys/kernel/core_pattern "
                  "cat /proc/sys/kernel/core_pattern; echo x > /proc/sys/kernel/core_pattern || echo refused\n")
    result = attacker.build(attacker.context(dockerfile), "--secret", f"id=s,src={secret}")
    assert Path("/proc/sys/kernel/core_pattern").read_text() == before
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["ssh", "nonsense"])
def test_mount_types_wharfie_does_not_offer_are_refused(attacker: Attacker, busybox_ref: str, kind: str) -> None:
    result = attacker.build(attacker.context(f"FROM {busybox_ref}\nRUN --mount=type={kind},target=/s true\n"))
    assert result.returncode != 0 and "Traceback" not in result.stderr, result.stderr
    assert f"type={kind}" in result.stderr or f"mount type '{kind}'" in result.stderr, result.stderr
