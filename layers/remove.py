"""Removing whatever is at a path, without ever following a symlink: the one removal helper.

A directory goes with everything below it (`shutil.rmtree`, which on Linux
walks by descriptor and so never follows a symlink planted inside the tree);
a file, symlink, device or socket is unlinked. Extraction (a layer entry
replacing what an earlier one made), COPY (a source replacing the
destination) and the overlay fold-back (a deletion, or a directory replacing
a file) all remove through here.
"""

from __future__ import annotations

import os
import shutil
import stat

__all__ = ["remove_entry"]


def remove_entry(path: str | os.PathLike[str], *, dir_fd: int | None = None, missing_ok: bool = False) -> None:
    """Remove what `path` names (relative to `dir_fd` when given); a symlink itself, never its target."""
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        if missing_ok:
            return
        raise
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path, dir_fd=dir_fd)
    else:
        os.unlink(path, dir_fd=dir_fd)
