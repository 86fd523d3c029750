"""The `wharfie` command line (click), with kaniko's flag names where kaniko had one.

The group and `main`: `wharfie build` (builder/cli/build_command.py), the
registry commands (registry_commands.py) and the attestation and manifest
commands (attest_commands.py) attach to it here. Every `WharfieError`
becomes one line on stderr and exit 1: users see what is wrong and where,
never a traceback.
"""

from __future__ import annotations

import sys

import click

from builder.cli.attest_commands import ATTEST_COMMANDS
from builder.cli.build_command import build
from builder.cli.registry_commands import REGISTRY_COMMANDS
from oci.errors import WharfieError

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wharfie")
def cli() -> None:
    """wharfie: build container images from Dockerfiles without a daemon, and push them."""


for _command in (build, *REGISTRY_COMMANDS, *ATTEST_COMMANDS):
    cli.add_command(_command)


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("wharfie: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except WharfieError as exc:
        click.echo(f"wharfie: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("wharfie: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"wharfie: error: {exc}", err=True)
        sys.exit(1)
