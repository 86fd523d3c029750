"""The layer cache: the key of a step (`cache_key`, a pure function) and the store of cached layers
in a registry repository (`layer_cache`).

May import: `builder.frontend` (what a key is computed from), `builder.image` (the
image model and remote layers), `layers/`, `registry/` and `oci/`. Not the
execution, the steps or the engine.
"""
