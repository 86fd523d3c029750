"""A mount namespace of the build's own, so the overlays its stages mount end with it, whatever happens.

A stage stacked on the layer store (builder/execution/stacked_rootfs.py) is an
overlay mounted at a path for the whole build. Made in the namespace the
build started in, such a mount would outlive a build killed with SIGKILL
(or ended at once by a second signal) and show on the host. Made in a
namespace of the build's own, private so nothing propagates back, it goes
with the last process of the build. The CLI enters it once, before any
thread exists: a thread keeps the namespace it had, the threads started
later take the one of the thread starting them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

from builder.execution.mount_api import make_rprivate

__all__ = ["enter_private_mount_namespace"]

log = logging.getLogger("wharfie")

_CLONE_NEWNS = 0x00020000


def enter_private_mount_namespace() -> bool:
    """Move this process into a new, private mount namespace; False (and nothing changed) where it cannot."""
    if threading.active_count() != 1:
        log.debug("mount namespace: not entered, other threads already run")
        return False
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.unshare(ctypes.c_int(_CLONE_NEWNS)) != 0:
        log.debug("mount namespace: unshare refused: %s", os.strerror(ctypes.get_errno()))
        return False
    make_rprivate()
    return True
