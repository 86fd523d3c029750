"""The build context: which of its files a build may see (`dockerignore`: .dockerignore read and matched).

May import: `builder.frontend` (Docker's path patterns, `globmatch`) and `oci`.
Nothing from `layers/` or `registry/`.
"""
