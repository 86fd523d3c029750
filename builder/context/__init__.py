"""The build context: which of its files a build may see (`dockerignore`: .dockerignore read and matched;
`files`: the Dockerfile and ignore files wharfie reads, never through a link out of the context).

May import: `builder.frontend` (Docker's path patterns, `globmatch`) and `oci`.
Nothing from `layers/` or `registry/`.
"""
