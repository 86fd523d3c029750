"""The `wharfie` command line (click), with kaniko's flag names where kaniko had one.

The group and `main`: `wharfie build` (builder/cli/build_command.py)
attaches to it here; the registry commands (registry_commands.py) and the
attestation and manifest commands (attest_commands.py) are imported only
when asked for (lazy_commands.py), so `--help` and a build start quickly. Every `WharfieError`
becomes one line on stderr and exit 1: users see what is wrong and where,
never a traceback. SIGTERM, SIGINT and SIGHUP cancel the command
(builder/cli/cancel.py): one line, exit 128 + the signal's number.
"""

from __future__ import annotations

import re
import sys

import click

from builder.cli.build_command import build
from builder.cli.cancel import Cancelled, handle_cancel_signals
from builder.cli.lazy_commands import LazyGroup
from oci.errors import WharfieError

__all__ = ["cli", "main"]

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")  # what a terminal or str.splitlines() breaks on


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wharfie")
def cli() -> None:
    """wharfie: build container images from Dockerfiles without a daemon, and push them."""


cli.add_command(build)  # the other commands are imported when asked for (builder/cli/lazy_commands.py)


def _one_line(text: str) -> str:
    """Control characters escaped: an error is one line, whatever text of the user's it quotes."""
    return _CONTROL.sub(lambda match: repr(match.group())[1:-1], text)


def main() -> None:
    from builder.execution.credential_guard import make_undumpable  # a few syscalls, no engine

    # httpcore imports trio, when installed, for async clients wharfie never makes (0.1 s of every start-up
    # on a machine that has it), and httpx imports its own command line (`httpx._main`: rich and pygments,
    # ~40 ms) when they are installed. The process is the CLI's own, so both are refused here (not in the API).
    sys.modules.setdefault("trio", None)  # type: ignore[arg-type]
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

    make_undumpable()  # before any credential is read: see builder/execution/credential_guard.py
    handle_cancel_signals()
    try:
        cli.main(standalone_mode=False)
    except Cancelled as exc:
        click.echo(f"wharfie: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("wharfie: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.message = _one_line(exc.message)
        exc.show()
        sys.exit(exc.exit_code)
    except WharfieError as exc:
        click.echo(f"wharfie: error: {_one_line(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("wharfie: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"wharfie: error: {_one_line(str(exc))}", err=True)
        sys.exit(1)
