"""`created_by` texts for image history, in BuildKit's words.

Docker users read these in `docker history`; matching BuildKit's spelling makes
wharfie's images look like the ones they know. The Go `%q` rendering of string
lists (`["a" "b"]`) is BuildKit's, not JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

__all__ = ["BUILDKIT_COMMENT", "go_quoted_list", "run_created_by"]

BUILDKIT_COMMENT = "buildkit.dockerfile.v0"


def go_quoted_list(items: Sequence[str]) -> str:
    """Go's fmt `%q` of a []string: `["sh" "-c" "echo hi"]`."""
    return "[" + " ".join(json.dumps(item, ensure_ascii=False) for item in items) + "]"


def run_created_by(argv: Sequence[str], build_args: Iterable[tuple[str, str]]) -> str:
    """`RUN |2 A=1 B=2 /bin/sh -c cmd`: BuildKit prefixes the build args a RUN could see."""
    args = [f"{key}={value}" for key, value in build_args]
    prefix = [f"|{len(args)}", *args] if args else []
    return "RUN " + " ".join([*prefix, *argv]) + " # buildkit"
