"""Users and groups as the image sees them: /etc/passwd and /etc/group inside the rootfs.

Docker resolves USER, `COPY --chown` and WORKDIR ownership against the image's
own files, never the host's; the rules here follow runc's libcontainer/user
(numeric ids need no entry; a missing name is an error) and BuildKit, the
builder behind `docker build` (supplementary groups, COPY --chown defaults).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from layers.securepath import open_in_root
from oci.errors import UnsafePathError, WharfieError

__all__ = ["ExecUser", "resolve_chown", "resolve_exec_user"]

_MAX_TABLE = 16 << 20  # an /etc/passwd larger than this is no user database worth reading whole


@dataclass(frozen=True)
class ExecUser:
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str


def _read_table(root: Path, name: str) -> list[list[str]]:
    """The rows of the image's /etc/NAME, opened by descriptor: a symlink on the way, /etc itself or the
    file, is followed inside the image as runc does, never to the host's files. None there: no rows."""
    try:
        fd = open_in_root(root, f"etc/{name}", os.O_RDONLY | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError, UnsafePathError):
        return []
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return []
        text = handle.read(_MAX_TABLE).decode(errors="replace")
    rows = []
    for line in text.splitlines():
        if line and not line.startswith("#"):
            rows.append(line.split(":"))
    return rows


def _lookup_user(root: Path, spec: str) -> list[str] | None:
    """The passwd row named `spec` (or with uid `spec`); rows without numeric ids are skipped."""
    for row in _read_table(root, "passwd"):
        if len(row) >= 4 and row[2].isdigit() and row[3].isdigit() and (
                row[0] == spec or (spec.isdigit() and row[2] == spec)):
            return row
    return None


def _lookup_group(root: Path, spec: str) -> list[str] | None:
    for row in _read_table(root, "group"):
        if len(row) >= 3 and row[2].isdigit() and (row[0] == spec or (spec.isdigit() and row[2] == spec)):
            return row
    return None


def _group_id(root: Path, spec: str, what: str) -> int:
    row = _lookup_group(root, spec)
    if row is not None:
        return int(row[2])
    if spec.isdigit():
        return int(spec)
    raise WharfieError(f"unable to find group {spec} in the image's /etc/group ({what})")


def _home(row: list[str]) -> str:
    return (row[5] if len(row) > 5 else "") or "/"


def _member_of(root: Path, name: str) -> set[int]:
    """The gids of every /etc/group row listing `name` as a member."""
    return {int(g[2]) for g in _read_table(root, "group")
            if len(g) >= 4 and g[2].isdigit() and name in g[3].split(",")}


def resolve_exec_user(root: Path, spec: str | None) -> ExecUser:
    """The uid, gid, supplementary groups and home a step runs with for `USER spec`.

    The supplementary groups are the primary gid first, then every group of
    /etc/group listing the user by name: runc's GetExecUser gives the latter and
    BuildKit (executor/oci, ensureAdditionalGids, after containerd's
    CVE-2023-25173 fix) always adds the primary gid, also for `uid:gid`.
    """
    # No USER means uid 0 (runc's GetExecUser defaults, as docker, BuildKit and buildah
    # run it), looked up by number: a base without /etc/passwd, `FROM scratch` with a
    # static binary, still runs as 0:0 instead of failing to find "root".
    spec = spec or "0"
    user_part, _, group_part = spec.partition(":")
    row = _lookup_user(root, user_part)
    if row is not None:
        uid, gid, home, name = int(row[2]), int(row[3]), _home(row), row[0]
    elif user_part.isdigit():
        uid, gid, home, name = int(user_part), 0, "/", None
    else:
        raise WharfieError(f"unable to find user {user_part}: no matching entries in the image's /etc/passwd")
    members: set[int] = set()
    if group_part:
        gid = _group_id(root, group_part, f"USER {spec}")
    else:
        members = _member_of(root, name) if name else set()
    return ExecUser(uid, gid, (gid, *sorted(members - {gid})), home or "/")


def resolve_chown(root: Path, spec: str) -> tuple[int, int]:
    """Numeric (uid, gid) for `COPY --chown=spec`.

    Without a group, a numeric uid gives the same number as gid, and a user
    name gives that user's primary group from /etc/passwd: what BuildKit's
    file backend (readUser) does, and what docker builds, although the
    Dockerfile reference words it as "the same numeric UID as the GID".
    """
    user_part, sep, group_part = spec.partition(":")
    if user_part.isdigit():
        uid = primary_gid = int(user_part)
    else:
        row = _lookup_user(root, user_part)
        if row is None:
            raise WharfieError(f"unable to find user {user_part} in the image's /etc/passwd (--chown={spec})")
        uid, primary_gid = int(row[2]), int(row[3])
    gid = _group_id(root, group_part, f"--chown={spec}") if sep and group_part else primary_gid
    return uid, gid
