"""Issue #10 point 4: no device node the build makes or brings opens a host device; /dev is docker's list.

A root step keeps CAP_MKNOD (as under docker), so it can make a node for a
host disk anywhere it can write: a cache mount, a tmpfs, the rootfs; an
earlier step or a base image layer can leave one in a stage that a later
step binds read-only. Every step mount is nodev, so opening any of them
fails; the only devices that open are the ones docker's default list
gives, bound from the host's /dev. (Rootless, mknod itself fails: the
attempts must fail all the same.)

The node made is for /dev/zero's numbers (1:5): harmless, but it opens
wherever `nodev` is missing, which is what is tested. A node for a host
disk would prove nothing more on this machine, whose device cgroup refuses
disks even to root on the host.
"""

from __future__ import annotations

import tarfile

import pytest
from attack import Attacker
from hostile_image import Entry, push_hostile_image

from fixtures.baseimage import BusyboxLayout
from fixtures.registry import Registry

DOCKER_DEV = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "fd", "stdin", "stdout",
              "stderr"}


NODE = "c 1 5"  # /dev/zero's numbers: see the module docstring


def _try(name: str, path: str) -> str:
    """Shell that prints `NAME: READ` when `path` opens as a device and gives a byte, else `NAME: blocked`."""
    return f"(head -c 1 {path} 2>/dev/null | wc -c | grep -q 1 && echo '{name}: READ' || echo '{name}: blocked')"


def _lines(result) -> list[str]:
    return result.stderr.splitlines()


def test_made_device_nodes_never_open(attacker: Attacker, busybox_ref: str) -> None:
    node = NODE
    dockerfile = (
        f"FROM {busybox_ref}\n"
        f"RUN --mount=type=cache,target=/c mknod /c/blk {node}; {_try('cache', '/c/blk')}\n"
        f"RUN --mount=type=tmpfs,target=/t mknod /t/blk {node}; {_try('tmpfs', '/t/blk')}\n"
        f"RUN mknod /blk {node}; {_try('rootfs', '/blk')}; mknod /dev/blk {node}; {_try('dev', '/dev/blk')}; "
        f"mknod /dev/shm/blk {node}; {_try('shm', '/dev/shm/blk')}\n"
        f"RUN --mount=type=bind,target=/ctx,rw mknod /ctx/blk {node}; {_try('bind-rw', '/ctx/blk')}\n")
    result = attacker.build(attacker.context(dockerfile))
    assert result.returncode == 0, result.stderr
    for name in ("cache", "tmpfs", "rootfs", "dev", "shm", "bind-rw"):
        assert f"{name}: blocked" in _lines(result), result.stderr


@pytest.fixture(scope="module")
def image_with_device(busybox_layout: BusyboxLayout, registry_open: Registry) -> str:
    return push_hostile_image(busybox_layout, registry_open, "security/with-device", [
        Entry("blkdir", tarfile.DIRTYPE),
        Entry("blkdir/blk", tarfile.CHRTYPE, 0o666, device=(1, 5)),
    ])


def test_device_from_a_layer_or_a_stage_bound_read_only(attacker: Attacker, image_with_device: str,
                                                          busybox_ref: str) -> None:
    dockerfile = (
        f"FROM {busybox_ref} AS stage\n"
        f"RUN mkdir /blkdir && (mknod /blkdir/blk {NODE} || true)\n"
        f"FROM {image_with_device}\n"
        f"RUN {_try('layer-rootfs', '/blkdir/blk')}\n"
        f"RUN --mount=type=bind,from={image_with_device},source=/blkdir,target=/img {_try('layer-bind', '/img/blk')}\n"
        f"RUN --mount=type=bind,from=stage,source=/blkdir,target=/stg {_try('stage-bind', '/stg/blk')}\n")
    result = attacker.build(attacker.context(dockerfile))
    assert not [line for line in _lines(result) if line.endswith(": READ")], result.stderr
    assert result.returncode == 0, result.stderr
    for name in ("layer-rootfs", "layer-bind", "stage-bind"):
        assert f"{name}: blocked" in _lines(result), result.stderr


def test_dev_is_dockers_default_device_list(attacker: Attacker, busybox_ref: str) -> None:
    dockerfile = (f"FROM {busybox_ref}\n"
                  "RUN echo \"dev: $(ls /dev | sort | tr '\\n' ' ')\" && "
                  "head -c 4 /dev/urandom | wc -c && head -c 2 /dev/zero | od -An -tx1 && echo x > /dev/null && "
                  "echo \"fstype: $(grep ' /dev/shm ' /proc/mounts | cut -d' ' -f4)\"\n")
    result = attacker.build(attacker.context(dockerfile))
    assert result.returncode == 0, result.stderr
    listed = next(line for line in _lines(result) if line.startswith("dev: "))
    assert set(listed.removeprefix("dev: ").split()) == DOCKER_DEV
    assert " 00 00" in _lines(result)
    shm = next(line for line in _lines(result) if line.startswith("fstype: "))
    assert {"nosuid", "nodev", "noexec"} <= set(shm.removeprefix("fstype: ").split(","))
