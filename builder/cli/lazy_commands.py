"""Subcommands imported only when they run, so `wharfie build` and `wharfie --help` start quickly.

The registry and attestation commands pull in the GitLab API, cleanup
policies, pulls, referrers and their dependencies; a build needs none of
them. `LazyGroup` knows each command's module and the first paragraph of its
help (what `--help` lists), and imports the module only when the command is
asked for by name. tests/builder/test_lazy_commands.py checks the table
against the commands themselves, so it cannot drift.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click
from click.utils import make_default_short_help

__all__ = ["LAZY_COMMANDS", "LazyGroup"]

# name -> (module, attribute, first paragraph of the command's help)
LAZY_COMMANDS: Mapping[str, tuple[str, str, str]] = {
    "cache": ("builder.cli.registry_commands", "cache_group", "The remote layer cache of `wharfie build --cache`."),
    "cleanup": ("builder.cli.registry_commands", "cleanup",
                "Delete REPOSITORY's tags as a GitLab cleanup policy would (never `latest`)."),
    "inspect": ("builder.cli.registry_commands", "inspect",
                "Show REFERENCE's manifest digest, platforms, config and layer sizes, as JSON."),
    "login": ("builder.cli.registry_commands", "login",
              "Check credentials against SERVER (default Docker Hub) and save them in docker's config.json."),
    "logout": ("builder.cli.registry_commands", "logout",
               "Remove SERVER's credentials (default Docker Hub) from docker's config.json."),
    "manifest": ("builder.cli.attest_commands", "manifest",
                 "Multi-platform images: join per-architecture images into an index, inspect one."),
    "provenance": ("builder.cli.attest_commands", "provenance",
                   "Print the SLSA provenance (an in-toto statement) attached to REFERENCE's image."),
    "pull": ("builder.cli.registry_commands", "pull", "Pull REFERENCE into a docker tarball and/or an OCI image layout."),
    "repositories": ("builder.cli.registry_commands", "repositories",
                     "A GitLab project's container repositories (GitLab's REST API)."),
    "sbom": ("builder.cli.attest_commands", "sbom", "Print the SPDX SBOM attached to REFERENCE's image."),
    "tags": ("builder.cli.registry_commands", "tags", "List and delete tags."),
}


class LazyGroup(click.Group):
    """A click group whose `LAZY_COMMANDS` are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in LAZY_COMMANDS and cmd_name not in self.commands:
            module, attribute, _help = LAZY_COMMANDS[cmd_name]
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """click's listing, with the lazy commands' help taken from the table instead of an import."""
        rows: list[tuple[str, Any]] = []
        limit = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        for name in self.list_commands(ctx):
            if name in self.commands:
                command = self.commands[name]
                if not command.hidden:
                    rows.append((name, command.get_short_help_str(limit)))
            else:
                rows.append((name, make_default_short_help(LAZY_COMMANDS[name][2], limit)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
