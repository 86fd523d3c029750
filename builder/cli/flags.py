"""The flags every command shares, each declared once here, with the one place its value is made.

- `registry_flags`: how to reach registries (plain-HTTP hosts, TLS, CA bundles,
  mirrors, retries, push concurrency); the command receives them as one
  `registry: RegistryOptions`. `wharfie build` and every registry command take
  the same flags under the same names.
- `logging_flags`: `-v/--verbosity` and `-q/--quiet`; logging is set up here,
  once, before the command's body runs, which receives `quiet`.
- `host_paths`: HOST=PATH values (`--registry-certificate`), parsed once, by
  click, so a bad one is a usage error before anything runs.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from registry.options import RegistryOptions

__all__ = ["host_paths", "logging_flags", "registry_flags", "setup_logging"]

Command = TypeVar("Command", bound=Callable[..., Any])


def host_paths(_ctx: click.Context | None, _param: click.Parameter | None, values: tuple[str, ...]) -> dict[str, str]:
    """HOST=PATH values as {host: path}: a click callback, so a bad one is a usage error naming the flag."""
    out: dict[str, str] = {}
    for value in values:
        host, sep, path = value.partition("=")
        if not sep or not host or not path:
            raise click.BadParameter(f"expected HOST=PATH, got {value!r}")
        out[host] = path
    return out


_REGISTRY_FLAGS = (
    click.option("--insecure-registry", "insecure_registries", multiple=True, metavar="HOST[:PORT]",
                 help="A registry reached over plain HTTP (repeatable)."),
    click.option("--skip-tls-verify", is_flag=True, help="Do not verify registries' TLS certificates."),
    click.option("--registry-certificate", "ca_files", multiple=True, metavar="HOST=PATH", callback=host_paths,
                 help="HOST=PATH of a CA bundle for that registry (repeatable)."),
    click.option("--registry-mirror", "mirrors", multiple=True, metavar="HOST[/PATH]",
                 help="Docker Hub mirror, tried before docker.io (repeatable)."),
    click.option("--push-retry", "retries", type=click.IntRange(min=0), default=3, show_default=True,
                 help="Retries of a failed registry request."),
    click.option("--push-concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
                 help="Blobs uploaded at once."),
)


def registry_flags(command: Command) -> Command:
    """Add the registry flags; the command gets them as `registry: RegistryOptions`."""

    @functools.wraps(command)
    def with_registry(*args: Any, **kw: Any) -> Any:
        kw["registry"] = RegistryOptions(
            insecure_registries=frozenset(kw.pop("insecure_registries")), skip_tls_verify=kw.pop("skip_tls_verify"),
            ca_files=kw.pop("ca_files"), mirrors=tuple(kw.pop("mirrors")), retries=kw.pop("retries"),
            push_concurrency=kw.pop("push_concurrency"))
        return command(*args, **kw)

    decorated: Any = with_registry
    for option in reversed(_REGISTRY_FLAGS):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


def logging_flags(command: Command) -> Command:
    """Add -v/-q and set logging up from them before the command runs; the command gets `quiet`."""

    @functools.wraps(command)
    def with_logging(*args: Any, **kw: Any) -> Any:
        setup_logging(kw.pop("verbosity"), kw["quiet"])
        return command(*args, **kw)

    decorated: Any = click.option("--verbosity", "-v", type=click.Choice(["debug", "info", "warn", "error"]),
                                  default="info", help="How much to log on stderr.")(with_logging)
    decorated = click.option("--quiet", "-q", is_flag=True, help="Print only the result: no progress, no log.")(
        decorated)
    return decorated  # type: ignore[no-any-return]


def setup_logging(verbosity: str, quiet: bool) -> None:
    """Log lines are the message alone, on stderr (stdout is for results); -q leaves warnings and errors."""
    level = logging.WARNING if quiet else getattr(logging, verbosity.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
