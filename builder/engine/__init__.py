"""The build itself: it coordinates the other parts and holds no mechanism of its own.

Owns: the Python API (`api.build`: keywords in, the options made once, a
`BuildResult` out; the CLI calls it too), the options a build is made with
(`options`), what every stage shares (`session`), one stage's steps in order
(`stage`, and `inplace_stage` for builds on the real root), the whole build
from Dockerfile to outputs (`build`), delivering the image (`output`: push,
digest files, OCI layout), its attestations (`attestations`) and the registry
client it uses (`registry_setup`).

May import: every other part of `builder/` except the CLI, `layers/`, `registry/` and `oci/`.
"""
