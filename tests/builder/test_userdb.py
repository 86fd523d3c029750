"""USER and --chown lookups read the image's /etc files by descriptor: never the host's, whatever the
image links them to."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.steps.userdb import resolve_chown, resolve_exec_user
from oci.errors import WharfieError


@pytest.fixture
def image(tmp_path: Path) -> tuple[Path, Path]:
    """(rootfs, outside): outside/passwd names a user the image does not have."""
    root, outside = tmp_path / "rootfs", tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    outside.mkdir()
    (outside / "passwd").write_text("evil:x:4242:4243::/evil:/bin/sh\n")
    (outside / "group").write_text("evilgroup:x:4244:evil\n")
    return root, outside


@pytest.mark.parametrize("target", ["absolute", "relative"])
def test_passwd_linked_out_of_the_image_is_not_read(image: tuple[Path, Path], target: str) -> None:
    root, outside = image
    for name in ("passwd", "group"):
        link = outside / name if target == "absolute" else Path("../../../../../..", *outside.parts[1:], name)
        (root / "etc" / name).symlink_to(link)
    with pytest.raises(WharfieError, match="unable to find user evil"):
        resolve_exec_user(root, "evil")
    with pytest.raises(WharfieError, match="unable to find group evilgroup"):
        resolve_chown(root, "0:evilgroup")


def test_etc_linked_elsewhere_in_the_image_is_followed_inside(image: tuple[Path, Path]) -> None:
    root, _ = image
    (root / "etc").rmdir()
    (root / "usr/share/base").mkdir(parents=True)
    (root / "usr/share/base/passwd").write_text("app:x:1000:1001::/home/app:/bin/sh\n")
    (root / "usr/share/base/group").write_text("app:x:1001:\nextra:x:1002:app\n")
    (root / "etc").symlink_to("/usr/share/base")  # absolute: taken from the image's root
    user = resolve_exec_user(root, "app")
    assert (user.uid, user.gid, user.groups, user.home) == (1000, 1001, (1001, 1002), "/home/app")


def test_a_fifo_for_passwd_does_not_hang(image: tuple[Path, Path]) -> None:
    import os

    root, _ = image
    os.mkfifo(root / "etc/passwd")
    assert resolve_exec_user(root, "0").uid == 0
