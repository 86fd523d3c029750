"""The command line: the group and `main` (`app`), `wharfie build` (`build_command`, a thin layer
over the Python API `builder.engine.api.build`), the flags every command shares (`flags`: registry,
logging), the registry commands (`registry_commands`) and the attestation and manifest commands
(`attest_commands`).

Owns turning flags, and the environment variables that give flags their
defaults, into the values the API and registry/ take, and errors into one
line and an exit code; builds nothing itself. `main` is the console script
(`wharfie = "builder.cli:main"`) and what `python -m builder` runs.

May import: every other part of `builder/`, `registry/`, `layers/` (a compression level is checked
when it is given, not at the first layer) and `oci/`; nothing imports it.
"""

from builder.cli.app import main

__all__ = ["main"]
