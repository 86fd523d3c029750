"""What a Dockerfile step does to the image, apart from running a program.

Owns: the config instructions (`config_steps`: ENV, LABEL, CMD, USER, ...), COPY
(`copy`), ADD's archives and URLs (`add_sources`), user and group lookups in the
image's /etc files (`userdb`) and the history lines docker writes (`history`).

May import: `builder.frontend` (the instructions), `layers/` and `oci/`.
Not `registry/`, nor execution, the cache or the engine.
"""
