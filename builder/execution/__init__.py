"""Running a RUN step's program: isolation chosen, namespaces entered, mounts set up, changes captured.

Owns: choosing the isolation (`isolation`), re-entering as a rootless user
(`rootless`), the sandbox (`sandbox`, which starts `sandbox_enter.py` by path
with `python -I` as the namespace's first process), running in place on the
real root (`inplace`), RUN --mount (`run_mounts`), one RUN from start to
captured changes (`run_step`, which folds an overlay's upper dir back with
`layers.overlay.merge_upper`), keeping hard links whole on an overlay
(`hardlinks`), a stage tree stacked as an overlay on unpacked layers and the
build's own mount namespace it lives in (`stacked_rootfs`,
`mount_namespace`) and a step's own network (`network`).

May import: `builder.frontend`, `builder.context` (the .dockerignore view of
a context bind), `builder.steps` (COPY's tree copy for a bind mount; and
`safe_join`, the old name of `layers.securepath.resolve_in_root`, until
sandbox.py and run_mounts.py import that), `layers/` and `oci/`. Not
`registry/`, the cache or the engine.
"""
