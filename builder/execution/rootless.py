"""Rootless builds: re-run the whole command inside a user namespace where we are root.

Extraction, RUN steps and snapshots must all see the same ids: a file the
image says belongs to 1000:1000 has to be owned by the id that *is* 1000 in
the namespace, or the layer written back would say otherwise. So rather than
entering a namespace per step, the build re-executes itself once under
`unshare --user --map-root-user --map-auto --mount` (util-linux 2.38): our uid
becomes 0 and, when /etc/subuid and /etc/subgid grant a range, that range
becomes 1..N (through the setuid newuidmap/newgidmap helpers). `--mount`
gives the build its own mount namespace, so overlay mounts are allowed.

Without subordinate ids only our own uid is mapped: the build still works,
but a step that chowns to another id fails, and the error says what to add.

Root that may not make mount namespaces (a CI job's container without
CAP_SYS_ADMIN) but may make a user namespace re-runs the build the same way,
with its ids mapped onto themselves (builder/execution/userns.py), so steps
run in the sandbox rather than in place.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from builder.execution.isolation import CHILD_MARK, IdMapping, probe_host, subid_range
from builder.execution.sandbox import PACKAGE_ROOT
from builder.execution.userns import run_in_own_user_namespace
from oci.errors import WharfieError

__all__ = ["CHILD_MARK", "chown_hint", "enter_user_namespace_if_needed", "reexec_in_user_namespace", "should_reexec",
           "unshare_command"]

log = logging.getLogger("wharfie")

def should_reexec(requested: str) -> bool:
    """Whether this invocation must move into a user namespace before building.

    Not when user namespaces are forbidden: the isolation choice then fails with its own message.
    Root moves only when it cannot make mount namespaces where it is.
    """
    if requested == "in-place" or os.environ.get(CHILD_MARK):
        return False
    facts = probe_host()
    if facts.root:
        return not facts.namespaces and facts.user_namespaces
    return facts.user_namespaces


def _self_command(argv: Sequence[str]) -> list[str]:
    # -P: the working directory (often the untrusted build context) is not put on sys.path, where
    # a `builder/` package or a `click.py` in it would be imported into wharfie itself. -I (which
    # implies -P) kept: a wharfie started isolated (its image does) stays so.
    return [sys.executable, "-I" if sys.flags.isolated else "-P", "-m", "builder", *argv]


def _self_env(mark: str) -> dict[str, str]:
    env = {**os.environ, CHILD_MARK: mark}
    if not _importable_without_cwd():
        # Started as `python -m builder` from wharfie's own tree: that tree, named explicitly.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))
    return env


def enter_user_namespace_if_needed(requested: str, argv: Sequence[str]) -> None:
    """Re-run this command in a user namespace when a sandboxed build needs one to make namespaces."""
    if not should_reexec(requested):
        return
    if os.geteuid() == 0:
        log.debug("isolation: root here cannot make mount namespaces, but can make a user namespace: "
                  "re-running the build in one, to run RUN steps in the sandbox rather than in place")
        run_in_own_user_namespace(_self_command(argv), _self_env("root"))
    reexec_in_user_namespace(argv)


def _user_name() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def unshare_command(*, subuid: Path = Path("/etc/subuid"), subgid: Path = Path("/etc/subgid")) -> list[str]:
    """The `unshare` prefix for this user: with `--map-auto` only when both id files grant a range."""
    command = ["unshare", "--user", "--map-root-user", "--mount"]
    user = _user_name()
    has_ranges = subid_range(user, path=subuid) is not None and subid_range(user, path=subgid) is not None
    helpers = shutil.which("newuidmap") is not None and shutil.which("newgidmap") is not None
    if has_ranges and helpers:
        command.append("--map-auto")
    elif has_ranges:
        log.warning("warning: /etc/subuid grants %s a range but newuidmap/newgidmap are missing (package uidmap): "
                    "mapping a single id", user)
    else:
        log.warning("warning: no subordinate ids for %s in /etc/subuid and /etc/subgid: only uid %d is mapped, "
                    "so a RUN that chowns to another id will fail", user, os.getuid())
    return command


def reexec_in_user_namespace(argv: Sequence[str]) -> NoReturn:
    """Replace this process with the same wharfie command inside a fresh user namespace."""
    if shutil.which("unshare") is None:
        raise WharfieError("rootless builds need util-linux's unshare (2.38 or later) on PATH")
    command = [*unshare_command(), *_self_command(argv)]
    # Not the arguments: a --build-arg value would stay in the build log.
    log.debug("rootless: %s ... (the same arguments)", " ".join(command[:-len(argv)] if argv else command))
    env = _self_env("1")
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(command[0], command, env)


def _importable_without_cwd() -> bool:
    """Whether this `builder` package is found on sys.path without the entry `-m` put first (the cwd)."""
    rest = sys.path if sys.flags.safe_path else sys.path[1:]
    return PACKAGE_ROOT in {os.path.realpath(entry) for entry in rest if entry}


def chown_hint(mapping: IdMapping | None) -> str | None:
    """What to tell a user whose step failed for lack of subordinate ids, or None when ids are mapped."""
    if mapping is None or not mapping.single_id:
        return None
    try:
        user = pwd.getpwuid(mapping.host_uid).pw_name
    except KeyError:
        user = str(mapping.host_uid)
    return (f"only uid {mapping.host_uid} is mapped in this rootless build, so files cannot be given to other "
            f"ids: add a range for {user} to /etc/subuid and /etc/subgid, e.g. {user}:100000:65536")
