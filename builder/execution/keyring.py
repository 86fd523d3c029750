"""A fresh session keyring for each step, as runc gives each container.

A process inherits its session keyring: without this, a RUN step as root
could read every key the builder's session holds (a CI job's tokens kept
with `keyctl`). Joining a new anonymous session keyring (keyctl(2)
KEYCTL_JOIN_SESSION_KEYRING with no name) leaves the step only its own;
the seccomp profile then refuses keyctl altogether. The syscall number
comes from libseccomp's table, through pyseccomp (builder/seccomp.py says
why that binding).
"""

from __future__ import annotations

import ctypes
import os

import pyseccomp  # type: ignore[import-untyped]

__all__ = ["join_fresh_session_keyring"]

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_KEYCTL_JOIN_SESSION_KEYRING = 1


def join_fresh_session_keyring() -> int:
    """Replace this process's session keyring with a new, empty, anonymous one; returns its serial."""
    number = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")
    serial = _libc.syscall(ctypes.c_long(number), ctypes.c_int(_KEYCTL_JOIN_SESSION_KEYRING), None)
    if serial < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"join a new session keyring: {os.strerror(err)}")
    return int(serial)
