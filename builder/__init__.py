"""wharfie's builder: a Dockerfile in, an image out, pushed to registries.

The Python API is `builder.build(context, destinations=[...], ...) -> BuildResult`
(builder/engine/api.py; the README has an example). Names are imported on first
use, so `import builder` (and `python -m builder`, the CLI) stays fast.
The subpackages and the rules on what imports what: ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from builder.engine.api import BuildResult, LayerSummary, build

__all__ = ["BuildResult", "LayerSummary", "build"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from builder.engine import api

        return getattr(api, name)
    raise AttributeError(f"module 'builder' has no attribute {name!r}")
