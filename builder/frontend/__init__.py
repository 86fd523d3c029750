"""The Dockerfile frontend: text in, a build plan out, as data.

Owns, from the bottom up (each module imports only those before it, as in
BuildKit's frontend/dockerfile): the shell lexer (`shell`), the line reader
and heredocs (`heredoc`), the typed instructions (`instructions`), their
builder-side expansion (`expansion`), the parser (`dockerfile`) and the build
plan: stages, their graph and ARG scopes (`plan`); plus Docker's path
patterns (`globmatch`), which the context and COPY share.

May import: the standard library and `oci.errors`. Nothing from `layers/`,
`registry/` or any other part of `builder/`: the frontend reads no files and
runs nothing (tests/builder/test_package_layout.py holds it to that).
"""
