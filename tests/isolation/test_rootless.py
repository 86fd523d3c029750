"""Rootless builds as a real non-root user: without subordinate ids a chown fails with advice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rootless_user import throwaway_user, userns_forbidden_reason

from fixtures.registry import Registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the test creates users, which needs root")


@pytest.fixture(autouse=True)
def _userns_allowed() -> None:
    reason = userns_forbidden_reason()
    if reason is not None:
        print(f"skipping rootless test: {reason}")
        pytest.skip(reason)


def _context(user, text: str) -> str:
    context = user.home / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(text)
    for path in (context, context / "Dockerfile"):
        os.chown(path, user.uid, user.gid)
    return str(context)


def test_single_id_build_works_until_a_chown(registry_open: Registry, busybox_ref: str) -> None:
    with throwaway_user(subids=False) as user:
        context = _context(user, f"FROM {busybox_ref}\nRUN echo ok > /ok.txt\nRUN touch /f && chown 1000:1000 /f\n")
        result = user.run(["build", context, "--no-push", "--insecure-registry", registry_open.host,
                           "--cache-dir", str(user.home / "cache")])
    assert result.returncode == 1
    assert "no subordinate ids" in result.stderr  # the warning up front
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wharfie: error: RUN failed (exit 1): Dockerfile:3")
    assert f"add a range for {user.name} to /etc/subuid and /etc/subgid" in last
    assert "Traceback" not in result.stderr


def test_rootless_layers_carry_in_namespace_owners(registry_open: Registry, busybox_ref: str, tmp_path) -> None:
    from fixtures.readback import read_back, tree_of

    with throwaway_user(subids=True) as user:
        context = _context(user, f"FROM {busybox_ref}\nRUN mkdir -p /srv/a && chown 1000:1000 /srv/a && "
                                 "touch /srv/a/f && chown 65534:65534 /srv/a/f\n")
        dest = f"{registry_open.host}/rootless/owners:1"
        result = user.run(["build", context, "-d", dest, "--insecure-registry", registry_open.host,
                           "--cache-dir", str(user.home / "cache")])
        assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    assert tree["srv/a"][2:4] == (1000, 1000) and tree["srv/a/f"][2:4] == (65534, 65534)


def test_rootless_stages_stack_on_a_store_of_their_own_dialect(registry_open: Registry, busybox_ref: str) -> None:
    """In a user namespace the unpacked layers use overlay's user.* xattrs; a build deleting base files
    leaves them as they were for the next one."""
    code = {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # this tree's wharfie, not an installed one
    with throwaway_user(subids=True) as user:
        context = _context(user, f"FROM {busybox_ref}\nRUN rm -rf /home /etc/passwd && mkdir /home && echo new > /home/only\n")
        first = user.run(["build", context, "--no-push", "--insecure-registry", registry_open.host,
                          "--cache-dir", str(user.home / "cache"), "-v", "debug"], env=code)
        assert first.returncode == 0, first.stderr
        assert "1 layer dirs stacked" in first.stderr, first.stderr
        store = user.home / "cache" / "unpacked" / "user"
        [passwd] = store.glob("*/etc/passwd")
        assert passwd.read_text().startswith("root:")
        (user.home / "ctx" / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN test -s /etc/passwd\n")
        second = user.run(["build", context, "--no-push", "--insecure-registry", registry_open.host,
                           "--cache-dir", str(user.home / "cache")], env=code)
        assert second.returncode == 0, second.stderr
