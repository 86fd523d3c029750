"""Issue #10 point 1: a RUN --mount target, or the image's own /dev, never resolves onto the host.

The attack: a bind whose directory holds `m -> /usr/bin/mount`, then a
second bind of an executable payload onto `/d/m`. Resolved on the host
side, the payload lands on the host's `mount` binary inside the sandbox's
mount namespace, and the set-up then runs it with every capability: it
writes a marker on the host. Variants: an absolute and a relative link, the
link from the context, from a stage, from a base image layer; and a base
image whose /dev is a symlink to a host directory early on PATH. The host
check is the marker (the payload never ran); where the link stays inside
the rootfs the step itself shows the payload landed on the image's file.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from attack import Attacker, Exe, Link
from hostile_image import Entry, push_hostile_image

from fixtures.baseimage import BusyboxLayout
from fixtures.registry import Registry

# Written by the hostile layer's payload, as root or as the rootless user (both can write /tmp).
LAYER_MARKER = "/tmp/wharfie-pwned-by-layer"
IMAGE_MOUNT = "FROM {base} AS base\nRUN echo image-mount-binary > /usr/bin/mount\n"


def _payload(marker: str) -> Exe:
    return Exe(f"#!/bin/sh\necho pwned > {marker}\necho payload-seen\n")


def _assert_host_untouched(attacker: Attacker, marker: str, result) -> None:
    assert not (attacker.home / marker).exists(), f"the payload ran on the host:\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr


def test_context_symlink_to_the_host_mount_binary(attacker: Attacker, busybox_ref: str) -> None:
    marker = attacker.path("pwned").name
    dockerfile = IMAGE_MOUNT.format(base=busybox_ref) + (
        "FROM base\n"
        "RUN --mount=type=bind,source=d,target=/d --mount=type=bind,source=payload,target=/d/m "
        "cat /usr/bin/mount\n")
    payload = _payload(str(attacker.home / marker))
    context = attacker.context(dockerfile, {"d/m": Link("/usr/bin/mount"), "payload": payload})
    result = attacker.build(context)
    _assert_host_untouched(attacker, marker, result)
    assert result.returncode == 0, result.stderr
    # Resolved inside the rootfs: the payload covered the image's /usr/bin/mount, in the step only.
    assert f"echo pwned > {attacker.home / marker}" in result.stderr


def test_relative_context_symlink_climbing_out(attacker: Attacker, busybox_ref: str) -> None:
    marker = attacker.path("pwned").name
    dockerfile = (f"FROM {busybox_ref}\n"
                  "RUN --mount=type=bind,source=d,target=/d --mount=type=bind,source=payload,target=/d/m true\n")
    context = attacker.context(dockerfile, {"d/m": Link("../" * 12 + "usr/bin/mount"),
                                            "payload": _payload(str(attacker.home / marker))})
    result = attacker.build(context)
    _assert_host_untouched(attacker, marker, result)
    assert result.returncode != 0
    assert "mount point /d/m" in result.stderr and "points outside the root" in result.stderr, result.stderr


def test_absolute_link_to_a_path_missing_from_the_image_is_refused(attacker: Attacker, busybox_ref: str) -> None:
    marker = attacker.path("pwned").name
    dockerfile = (f"FROM {busybox_ref}\n"
                  "RUN --mount=type=bind,source=d,target=/d --mount=type=bind,source=payload,target=/d/m true\n")
    context = attacker.context(dockerfile, {"d/m": Link("/usr/bin/mount"),
                                            "payload": _payload(str(attacker.home / marker))})
    result = attacker.build(context)
    _assert_host_untouched(attacker, marker, result)
    assert result.returncode != 0
    assert "reached through a symlink inside an earlier mount: refused" in result.stderr, result.stderr


def test_stage_made_symlink(attacker: Attacker, busybox_ref: str) -> None:
    marker = str(attacker.path("pwned"))
    dockerfile = IMAGE_MOUNT.format(base=busybox_ref) + (
        f"FROM {busybox_ref} AS evil\n"
        "RUN mkdir /d && ln -s /usr/bin/mount /d/m && "
        f"printf '#!/bin/sh\\necho pwned > {marker}\\n' > /payload && chmod 755 /payload\n"
        "FROM base\n"
        "RUN --mount=type=bind,from=evil,source=/d,target=/d "
        "--mount=type=bind,from=evil,source=/payload,target=/d/m cat /usr/bin/mount\n")
    result = attacker.build(attacker.context(dockerfile))
    assert not os.path.exists(marker), f"the payload ran on the host:\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    assert f"echo pwned > {marker}" in result.stderr


@pytest.fixture(scope="module")
def hostile_base(busybox_layout: BusyboxLayout, registry_open: Registry) -> str:
    """/d/m -> /usr/bin/mount, an executable /payload, a real /usr/bin/mount; and /dev -> /usr/local/bin."""
    payload = f"#!/bin/sh\necho pwned > {LAYER_MARKER}\n".encode()
    return push_hostile_image(busybox_layout, registry_open, "security/hostile-base", [
        Entry("d", tarfile.DIRTYPE),
        Entry("d/m", tarfile.SYMTYPE, 0o777, link="/usr/bin/mount"),
        Entry("dev", tarfile.SYMTYPE, 0o777, link="/usr/local/bin"),
        Entry("payload", tarfile.REGTYPE, 0o755, payload),
        Entry("usr/bin/mount", tarfile.REGTYPE, 0o755, b"image-mount-binary\n"),
    ])


@pytest.fixture(autouse=True)
def _no_layer_marker() -> Iterator[None]:
    yield
    Path(LAYER_MARKER).unlink(missing_ok=True)


def test_base_layer_symlink_bound_from_the_image(attacker: Attacker, hostile_base: str, busybox_ref: str) -> None:
    # The step's own image has no /d: the link arrives with the first bind, from the hostile image's layer.
    dockerfile = IMAGE_MOUNT.format(base=busybox_ref) + ("FROM base\n"
                  f"RUN --mount=type=bind,from={hostile_base},source=/d,target=/d "
                  f"--mount=type=bind,from={hostile_base},source=/payload,target=/d/m cat /usr/bin/mount\n")
    result = attacker.build(attacker.context(dockerfile))
    assert not os.path.exists(LAYER_MARKER), f"the payload ran on the host:\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    assert LAYER_MARKER in result.stderr  # the step saw the payload on the image's /usr/bin/mount


def test_base_layer_dev_symlink_to_a_host_directory(attacker: Attacker, hostile_base: str) -> None:
    # /dev -> /usr/local/bin: resolved on the host side, the step's /dev (devices, and a mount "in /dev")
    # lands on the host's /usr/local/bin, early on PATH; inside the rootfs it is the image's own.
    dockerfile = (f"FROM {hostile_base}\n"
                  f"RUN --mount=type=bind,from={hostile_base},source=/payload,target=/dev/mount "
                  "[ -c /usr/local/bin/null ] && [ -c /dev/zero ] && [ -x /usr/local/bin/mount ] && echo devices-inside\n")
    result = attacker.build(attacker.context(dockerfile))
    assert not os.path.exists(LAYER_MARKER), f"the payload ran on the host:\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    assert "devices-inside" in result.stderr.splitlines()
