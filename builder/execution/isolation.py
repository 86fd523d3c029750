"""Choosing how RUN steps are isolated, from what this machine allows, and saying so.

CI runners differ: wharfie may be root in a container that allows
namespaces, an ordinary user with (or without) subordinate ids, or root in a
locked-down container where no namespace can be made. `--isolation auto`
looks at the facts (`probe_host`) and picks the strongest mode that works
(`choose_isolation`, a pure function so every case is testable); `sandbox`
and `in-place` force one and fail with a one-line reason when it cannot work.

The rootless case is decided before the build (builder/execution/rootless.py re-runs
the whole command in a user namespace); inside it this module sees root in a
user namespace and reports the id mapping it found.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from layers.overlay import overlay_supported
from oci.errors import WharfieError

__all__ = [
    "CHILD_MARK", "HostFacts", "IdMapping", "Isolation", "IsolationError", "SubIdRange", "choose_isolation", "container_evidence",
    "id_mapping", "probe_host", "resolve_isolation", "subid_range", "with_snapshotter",
]

log = logging.getLogger("wharfie")

Mode = Literal["sandbox", "in-place"]
Requested = Literal["auto", "sandbox", "in-place"]
_CONTAINER_CGROUP_WORDS = ("docker", "kubepods", "containerd", "libpod", "lxc", "buildkit")
# Set in a build re-run in a user namespace (builder/execution/rootless.py), so it never re-runs itself
# again: "1" for a user without root, "root" for root that could make no mount namespace where it was.
CHILD_MARK = "WHARFIE_ROOTLESS_CHILD"
_ROOT_REENTERED = ("root here could not make mount namespaces (no CAP_SYS_ADMIN: a CI job's container), so the "
                   "build runs in a user namespace of its own, where it can")


class IsolationError(WharfieError):
    """The requested isolation cannot work here."""


@dataclass(frozen=True)
class SubIdRange:
    start: int
    count: int


@dataclass(frozen=True)
class IdMapping:
    """The uid map of the user namespace this process runs in (None outside one)."""

    host_uid: int  # the host uid that is 0 here
    extra: SubIdRange | None  # host ids mapped to 1..count, when subordinate ids were granted

    @property
    def single_id(self) -> bool:
        return self.extra is None


@dataclass(frozen=True)
class HostFacts:
    root: bool  # effective uid 0 (possibly inside a user namespace)
    mapping: IdMapping | None  # set when this process already runs in a user namespace
    namespaces: bool  # mount/pid/ipc/uts namespaces can be made as we are
    user_namespaces: bool  # a user namespace can be made, with mount/pid namespaces inside it
    container: str | None  # why we think this is a container, or None
    reentered: str | None = None  # CHILD_MARK's value: this build was re-run in a user namespace


@dataclass(frozen=True)
class Isolation:
    mode: Mode
    rootless: bool = False  # the build runs inside a user namespace
    mapping: IdMapping | None = None
    snapshotter: Literal["overlay", "walk"] = "walk"  # how RUN changes are found
    reason: str = ""

    def describe(self) -> str:
        parts: list[str] = [self.mode]
        if self.rootless and self.mapping is not None:
            ids = f"uid {self.mapping.host_uid} as 0"
            if self.mapping.extra is not None:
                extra = self.mapping.extra
                ids += f", subordinate ids {extra.start}-{extra.start + extra.count - 1} as 1-{extra.count}"
            else:
                ids += ", no subordinate ids"
            parts.append(f"rootless ({ids})")
        parts.append(f"RUN snapshots: {self.snapshotter}")
        text = ", ".join(parts)
        return f"{text}; {self.reason}" if self.reason else text


def container_evidence() -> str | None:
    """A short reason to believe this process runs in a container, or None."""
    for marker in ("/.dockerenv", "/run/.containerenv"):
        if os.path.exists(marker):
            return marker
    if os.environ.get("container"):
        return f"container={os.environ['container']}"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "KUBERNETES_SERVICE_HOST"
    try:
        cgroups = Path("/proc/1/cgroup").read_text()
    except OSError:
        return None
    for word in _CONTAINER_CGROUP_WORDS:
        if word in cgroups:
            return f"/proc/1/cgroup mentions {word}"
    return None


def id_mapping(uid_map: str | None = None) -> IdMapping | None:
    """How this process's user namespace maps ids (or the given uid_map text); None in the initial one."""
    if uid_map is None:
        try:
            uid_map = Path("/proc/self/uid_map").read_text()
        except OSError:
            return None
    rows = [line.split() for line in uid_map.splitlines() if line.strip()]
    if rows == [["0", "0", "4294967295"]] or not rows:
        return None
    host_uid, extra = -1, None
    for inside, outside, count in ((int(a), int(b), int(c)) for a, b, c in rows):
        if inside == 0:
            host_uid = outside
            if count > 1:
                extra = SubIdRange(outside + 1, count - 1)
        elif inside == 1:
            extra = SubIdRange(outside, count)
    return IdMapping(host_uid, extra)


def subid_range(user: str | None = None, uid: int | None = None, *, path: Path = Path("/etc/subuid")) -> SubIdRange | None:
    """The first subordinate id range /etc/subuid (or `path`) grants the user, by name or uid."""
    uid = os.getuid() if uid is None else uid
    if user is None:
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = str(uid)
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.strip().split(":")
        valid = len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit() and int(fields[2]) > 0
        if valid and fields[0] in (user, str(uid)):
            return SubIdRange(int(fields[1]), int(fields[2]))
    return None


def _works(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def probe_host() -> HostFacts:
    """Look at what this process may do: each probe is one short `unshare` run."""
    root = os.geteuid() == 0
    namespaces = root and _works(["unshare", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child", "true"])
    if not root:
        user_namespaces = _works(["unshare", "--user", "--map-root-user", "true"])
    else:  # root without CAP_SYS_ADMIN (a CI job's container) may still get it in a user namespace
        user_namespaces = namespaces or _works(["unshare", "--user", "--map-root-user", "--mount", "--pid", "--ipc",
                                                "--uts", "--fork", "--kill-child", "true"])
    return HostFacts(root=root, mapping=id_mapping(), namespaces=namespaces, user_namespaces=user_namespaces,
                     container=container_evidence(), reentered=os.environ.get(CHILD_MARK) or None)


def choose_isolation(requested: Requested, facts: HostFacts, *, force: bool = False) -> Isolation:
    """The mode to build in; `IsolationError` when the requested one cannot work here.

    A non-root caller never gets here with sandbox possible: builder/execution/rootless.py
    has re-run the build inside a user namespace first, where it is root.
    """
    rootless = facts.mapping is not None
    if requested in ("auto", "sandbox") and facts.root and facts.namespaces:
        why = "namespaces available" if requested == "auto" else "requested"
        if facts.reentered == "root":
            why = f"{why}: {_ROOT_REENTERED}"
        return Isolation("sandbox", rootless=rootless, mapping=facts.mapping, reason=why)
    if requested in ("auto", "sandbox") and facts.root and facts.user_namespaces:
        raise IsolationError("internal: root without mount namespaces must re-run the build in a user namespace "
                             "first")
    if requested == "sandbox":
        if not facts.root and not facts.user_namespaces:
            raise IsolationError("--isolation sandbox: this kernel or container forbids user namespaces for "
                                 "non-root users; run as root, or use --isolation in-place in a throwaway container")
        raise IsolationError("--isolation sandbox: cannot create mount/pid namespaces here "
                             "(no CAP_SYS_ADMIN?); use --isolation in-place in a throwaway container")
    if requested == "auto" and not facts.root and facts.user_namespaces:
        raise IsolationError("internal: a rootless build must be re-run in a user namespace first")
    if not facts.root:
        raise IsolationError("cannot isolate RUN steps: not root and user namespaces are forbidden here; "
                             "building in place needs root in a throwaway container")
    if facts.container is None and not force:
        what = "--isolation in-place" if requested == "in-place" else "no namespaces can be made and"
        raise IsolationError(f"{what} this does not look like a container: building in place would overwrite "
                             "this machine's own root filesystem; pass --force if it really is disposable")
    why = f"in a container ({facts.container})" if facts.container else "forced"
    if requested == "auto":
        why = f"no namespaces can be made here, not even in a user namespace, {why}"
    return Isolation("in-place", rootless=rootless, mapping=facts.mapping, reason=why)


def with_snapshotter(isolation: Isolation, work_root: Path, preference: str = "auto") -> Isolation:
    """Pick how RUN changes are found: an overlay upper dir where one can be mounted, else the walk."""
    if isolation.mode != "sandbox" or preference == "walk":
        return replace(isolation, snapshotter="walk")
    work_root.mkdir(parents=True, exist_ok=True)
    if overlay_supported(work_root, userxattr=isolation.rootless):
        return replace(isolation, snapshotter="overlay")
    if preference == "overlay":
        raise IsolationError(f"overlay snapshots requested but an overlay cannot be mounted under {work_root}")
    return replace(isolation, snapshotter="walk")


def resolve_isolation(requested: Requested, *, force: bool, work_root: Path, snapshotter: str = "auto") -> Isolation:
    """Probe, choose, pick the snapshotter, and log the choice (one line, every build)."""
    isolation = with_snapshotter(choose_isolation(requested, probe_host(), force=force), work_root, snapshotter)
    log.info("isolation: %s", isolation.describe())
    return isolation
