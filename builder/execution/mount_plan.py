"""What a step's mount namespace holds, as data: docker's defaults plus the step's own mounts.

builder/sandbox.py makes the plan, prints it with `-v debug` and prepares
the mount points; builder/sandbox_enter.py carries it out inside the
namespace. One list, so what is printed is what is mounted.

Flags, after docker's defaults (moby's oci/defaults.go) and BuildKit's:
every mount a step gets is `nosuid,nodev` (the rootfs, binds of the context
or a stage, caches, secrets, tmpfs), so neither a setuid file nor a device
node the build made (`mknod`, a device in a layer, one made by an earlier
step) can be used; `/proc` and `/dev/shm` are `noexec` too. Devices are
docker's default list and no more: null, zero, full, random, urandom and
tty, each bound from the host's /dev (the only mounts without `nodev`), and
a private devpts for ptmx and pts/N. `/sys` is not mounted at all. Binds,
caches and tmpfs stay executable, as in BuildKit (heredoc scripts run from
/dev/pipes, build tools run from caches).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["DEVICES", "ROOT_ATTRS", "PlannedMount", "describe_mount", "prepared_here", "step_mounts"]

Kind = Literal["bind", "tmpfs", "proc", "devpts", "mask", "readonly", "symlink"]

ROOT_ATTRS = ("nosuid", "nodev")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_PROC_READONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
_PROC_MASKED = ("asound", "acpi", "interrupts", "kcore", "keys", "latency_stats", "timer_list", "timer_stats",
                "sched_debug", "scsi")
_DEV_LINKS = (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
              ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2"))


@dataclass(frozen=True)
class PlannedMount:
    kind: Kind
    target: str  # absolute, inside the rootfs; resolved there (by descriptor) just before it is mounted
    source: str = ""  # bind: a host path wharfie chose; symlink: the link's text
    options: tuple[tuple[str, str | None], ...] = ()  # filesystem options (a None value is a flag)
    attrs: tuple[str, ...] = ()  # ro, nosuid, nodev, noexec
    directory: bool | None = True  # the mount point's kind; None: whatever is there (never made)
    optional: bool = False  # skipped when the target does not exist

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedMount:
        """Back from `dataclasses.asdict` after a trip through JSON (lists for tuples)."""
        options = tuple((str(key), None if value is None else str(value)) for key, value in data["options"])
        return cls(**{**data, "options": options, "attrs": tuple(data["attrs"])})


def _defaults() -> list[PlannedMount]:
    mounts = [PlannedMount("proc", "/proc", attrs=("nosuid", "nodev", "noexec"))]
    mounts += [PlannedMount("readonly", f"/proc/{name}", attrs=("ro", "nosuid", "nodev", "noexec"), directory=None,
                            optional=True) for name in _PROC_READONLY]
    # A masked directory gets an empty read-only tmpfs, a masked file /dev/null (docker's maskedPaths).
    mounts += [PlannedMount("mask", f"/proc/{name}", attrs=("ro", "nosuid", "noexec"), directory=None, optional=True)
               for name in _PROC_MASKED]
    mounts.append(PlannedMount("tmpfs", "/dev", options=(("mode", "0755"), ("size", "65536k")),
                               attrs=("nosuid", "nodev")))
    mounts += [PlannedMount("bind", f"/dev/{name}", source=f"/dev/{name}", attrs=("nosuid", "noexec"), directory=False)
               for name in DEVICES]
    mounts.append(PlannedMount("devpts", "/dev/pts", options=(("newinstance", None), ("ptmxmode", "0666"),
                                                             ("mode", "0620")), attrs=("nosuid", "noexec")))
    mounts.append(PlannedMount("tmpfs", "/dev/shm", options=(("mode", "1777"), ("size", "65536k")),
                               attrs=("nosuid", "nodev", "noexec")))
    mounts += [PlannedMount("symlink", f"/dev/{name}", source=target, directory=None) for name, target in _DEV_LINKS]
    return mounts


def step_mounts(host_files: Iterable[tuple[str, str]], binds: Iterable[tuple[str, str, bool, bool]],
                tmpfs: Iterable[tuple[str, int | None]]) -> list[PlannedMount]:
    """The whole plan: docker's defaults, the host files (source, target), the step's binds
    (source, target, readonly, is a directory) and tmpfs mounts (target, size in bytes)."""
    mounts = _defaults()
    for source, target in host_files:
        # A writable copy, as docker gives: a step may append to /etc/hosts, and the change dies with the step.
        mounts.append(PlannedMount("bind", target, source=source, attrs=("nosuid", "nodev", "noexec"),
                                   directory=False))
    for source, target, readonly, is_dir in binds:
        attrs = ("ro", "nosuid", "nodev") if readonly else ("nosuid", "nodev")
        mounts.append(PlannedMount("bind", target, source=source, attrs=attrs, directory=is_dir))
    for target, size in tmpfs:
        options = (("size", str(size)),) if size else ()
        mounts.append(PlannedMount("tmpfs", target, options=options, attrs=("nosuid", "nodev")))
    return mounts


def prepared_here(mount: PlannedMount) -> bool:
    """Whether the mount point belongs to the image's rootfs (made and removed by the host side)
    rather than to a filesystem the namespace mounts (/proc, /dev, an earlier tmpfs or bind)."""
    return mount.kind not in ("mask", "readonly", "symlink") and not mount.target.startswith(("/proc/", "/dev/"))


def describe_mount(mount: PlannedMount) -> str:
    options = ",".join(key if value is None else f"{key}={value}" for key, value in mount.options)
    what = mount.source if mount.kind == "bind" else mount.kind
    flags = ",".join(mount.attrs) or "-"
    if mount.kind == "symlink":
        return f"{mount.target} -> {mount.source}"
    return f"{mount.target} {what} {flags}" + (f" ({options})" if options else "")

