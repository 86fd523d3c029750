"""The command line: `wharfie build` (`app`) and the registry commands (`registry_commands`).

Owns turning flags into the option values of the engine and errors into one
line and an exit code; builds nothing itself. `main` is the console script
(`wharfie = "builder.cli:main"`) and what `python -m builder` runs.

May import: every other part of `builder/`, `registry/`, `layers/` (a compression level is checked
when it is given, not at the first layer) and `oci/`; nothing imports it.
"""

from builder.cli.app import main

__all__ = ["main"]
