"""Bases of unusual shape: no /etc/passwd at all (FROM scratch plus a static binary)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from builder.steps.userdb import resolve_exec_user
from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry
from oci.errors import WharfieError

BUSYBOX = shutil.which("busybox")


def test_no_user_without_passwd_is_root(tmp_path: Path) -> None:
    user = resolve_exec_user(tmp_path, None)
    assert (user.uid, user.gid, user.groups, user.home) == (0, 0, (0,), "/")
    numeric = resolve_exec_user(tmp_path, "1234:5678")
    assert (numeric.uid, numeric.gid, numeric.groups) == (1234, 5678, (5678,))
    with pytest.raises(WharfieError, match="unable to find user nobody"):
        resolve_exec_user(tmp_path, "nobody")


def test_no_user_takes_uid_0s_row_when_there_is_one(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("toor:x:0:7:admin:/home/toor:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("seven:x:7:\nwheel:x:10:toor\n")
    user = resolve_exec_user(tmp_path, None)
    assert (user.uid, user.gid, user.groups, user.home) == (0, 7, (7, 10), "/home/toor")


@pytest.mark.skipif(BUSYBOX is None, reason="needs a static busybox on the host (package busybox-static)")
def test_scratch_base_without_passwd_runs_as_root_and_numeric_users(registry_open: Registry,
                                                                     tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox mkdir -m 1777 /w && /bin/busybox id -u > /w/root-id"]\n'
        "USER 1234:5678\n"
        'RUN ["/bin/busybox", "sh", "-c", "/bin/busybox id -u > /w/uid; /bin/busybox id -g > /w/gid"]\n'
    )
    dest = f"{registry_open.host}/odd/scratch:1"
    result = run_wharfie("build", str(ctx), "-d", dest, "--insecure-registry", registry_open.host,
                         "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    assert tree["w/root-id"][4] == "0\n"
    assert (tree["w/uid"][4], tree["w/gid"][4]) == ("1234\n", "5678\n")
    assert tree["w/uid"][2:4] == (1234, 5678)
    assert "etc/passwd" not in tree


@pytest.mark.skipif(BUSYBOX is None, reason="needs a static busybox on the host (package busybox-static)")
def test_named_user_missing_from_a_base_without_passwd_is_an_error(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    shutil.copy(BUSYBOX, ctx / "busybox")
    (ctx / "Dockerfile").write_text('FROM scratch\nCOPY busybox /bin/busybox\nUSER app\nRUN ["/bin/busybox", "true"]\n')
    result = run_wharfie("build", str(ctx), "--no-push", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "unable to find user app" in lines[0] and "Dockerfile:4" in lines[0], result.stderr
