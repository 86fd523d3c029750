"""The context's own files that wharfie reads on the host: the Dockerfile and the .dockerignore files.

The context is untrusted: its `Dockerfile` may be a symlink to
`/proc/self/environ` (wharfie's environment, CI job token included) or to a
file of the user's home, and whatever wharfie reads as a Dockerfile or as
ignore patterns ends up, line by line, in its error messages. So a file named
inside the context must resolve inside it: a symlink (or a symlinked parent
directory) that leads out is refused. An absolute link is refused too, as it
names a host path. A file the user names outside the context (`-f
~/Dockerfile.prod`) is the user's own choice and is taken as it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from oci.errors import WharfieError

__all__ = ["context_file"]


def _inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def context_file(context: str | Path, path: str | Path, *, what: str) -> Path | None:
    """`path` with its symlinks resolved, or None when no regular file is there.

    When `path` names a place inside `context`, the resolved file must be inside
    the context too, else WharfieError (`what` names the file in the message).
    """
    named = os.path.abspath(path)
    top = os.path.realpath(context)
    if not os.path.lexists(named):
        return None
    resolved = os.path.realpath(named)
    named_inside = _inside(named, os.path.abspath(context)) or _inside(named, top)
    if named_inside and not _inside(resolved, top):
        shown = os.path.relpath(named, os.path.abspath(context))
        raise WharfieError(f"{what} {shown} is a symlink leading outside the build context: refused")
    return Path(resolved) if os.path.isfile(resolved) else None
