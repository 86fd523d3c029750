"""The image under construction: the immutable image value and its changes (`state`), and the base
image it starts from, pulled from a registry or scratch (`base`), and the base layers unpacked
once per machine for stage trees to stack on (`unpacked_store`).

Below both the cache and the engine, which share these values (the cache stores
and reads layers of the same image, as lazy remote layers).

May import: `layers/`, `registry/` and `oci/`; nothing else of `builder/`.
"""
