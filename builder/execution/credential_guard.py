"""Keeping RUN steps away from the job's credentials when they share its process tree.

A CI job hands wharfie its registry credentials in the environment
(`CI_JOB_TOKEN`, `CI_REGISTRY_PASSWORD`) of the job's shell and of wharfie.
A step gets a clean environment, but a step running in place is root in the
same pid namespace, and Linux lets a process read another's
`/proc/PID/environ` and `/proc/PID/mem` when `ptrace_may_access` agrees:
same uid, the target dumpable, and the reader's effective capabilities a
superset of the target's permitted ones (or CAP_SYS_PTRACE). So:

- `make_undumpable` (PR_SET_DUMPABLE 0, at wharfie's start): wharfie's own
  `/proc/PID/environ` and memory need CAP_SYS_PTRACE, which no step holds.
  It also keeps core dumps, which would hold the same secrets, from being
  written. The flag resets at execve, so it covers wharfie alone.
- `in_place_step_capabilities`: a step started in place gets docker's
  default set as its bounding set, minus one capability this process (and so
  the job's shell, whose child it is) holds: the "marker". A step's capabilities are then never
  a superset of the job's processes', so the kernel refuses it their environ
  and memory, while it keeps what builds use (chown, setuid, ...).

In the sandbox a step sees no other process at all (its own pid namespace);
in a user namespace the job's processes are in the parent namespace, where
the step holds no capability.

libc's prctl(2) through ctypes, from the symbols already loaded into this
process (`CDLL(None)`): no library is looked up on disk, which in place may
already be the image being built.
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["DOCKER_DEFAULT_CAPS", "StepCapabilities", "choose_marker", "in_place_step_capabilities", "make_undumpable"]

log = logging.getLogger("wharfie")

_PR_SET_DUMPABLE = 4
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_CAP_NAMES = {0: "chown", 1: "dac_override", 3: "fowner", 4: "fsetid", 5: "kill", 6: "setgid", 7: "setuid",
              8: "setpcap", 10: "net_bind_service", 13: "net_raw", 18: "sys_chroot", 27: "mknod",
              29: "audit_write", 31: "setfcap"}
# moby's default capability set: what `docker build` gives a RUN step.
DOCKER_DEFAULT_CAPS = frozenset(_CAP_NAMES)
# Which capability a step goes without, first the ones builds need least.
_MARKER_PREFERENCE = (29, 27, 31, 13, 18, 10)


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def make_undumpable() -> None:
    """Keep this process's environ and memory from any process without CAP_SYS_PTRACE (and from core dumps)."""
    if _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        log.debug("prctl(PR_SET_DUMPABLE, 0) failed: errno %d", ctypes.get_errno())


def _capability_sets(status: str) -> dict[str, int]:
    sets = {}
    for line in status.splitlines():
        name, _, value = line.partition(":")
        if name in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            sets[name] = int(value.strip(), 16)
    return sets


def choose_marker(permitted: int, inheritable: int) -> int | None:
    """The capability steps go without: one this process holds and cannot pass on through its inheritable set."""
    for cap in _MARKER_PREFERENCE:
        if permitted >> cap & 1 and not inheritable >> cap & 1:
            return cap
    return None


@dataclass(frozen=True)
class StepCapabilities:
    """What a step started in place goes without: `apply` runs in the step's process, between fork and exec."""

    drop: tuple[int, ...]  # capability numbers cut from the bounding set
    marker: str | None  # the one docker would give that is withheld too; None: none could be chosen
    # Looked up before the fork: a symbol lookup takes the dynamic loader's lock, which
    # another thread may have held when the step's process was forked.
    _prctl: Callable[..., int] = field(default_factory=lambda: _libc().prctl, compare=False, repr=False)

    def apply(self) -> None:
        self._prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
        for cap in self.drop:
            # A step switched to another USER already holds no capability: nothing left to drop.
            if self._prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and os.geteuid() == 0:
                raise OSError(ctypes.get_errno(), f"cannot withhold capability {cap} from the step")


def in_place_step_capabilities(status: str | None = None) -> StepCapabilities:
    """The bounding set steps get in place, from this thread's capabilities (or a /proc status text)."""
    sets = _capability_sets(Path("/proc/thread-self/status").read_text() if status is None else status)
    marker = choose_marker(sets.get("CapPrm", 0), sets.get("CapInh", 0))
    bounding = sets.get("CapBnd", 0)
    drop = tuple(cap for cap in range(bounding.bit_length())
                 if bounding >> cap & 1 and (cap not in DOCKER_DEFAULT_CAPS or cap == marker))
    return StepCapabilities(drop, _CAP_NAMES[marker] if marker is not None else None)
