"""kaniko's spellings of a command line, rewritten into wharfie's before click parses it.

kaniko parsed its flags with Go's pflag, which differs from click in ways a
job's script relies on: booleans also as ``--flag=true|false`` (any spelling
Go's ``strconv.ParseBool`` takes), shorthands as ``-v=debug``, durations as
``1h30m``, log levels ``trace``/``fatal``/``panic``, deprecated names
(``--customPlatform``), and a few ``KANIKO_*`` environment variables read
after the flags. `normalize` rewrites all of that into the flags wharfie
declares, so each flag keeps one definition; `KanikoCompatibleCommand` applies
it to `wharfie build`. It also makes a bare optional-value boolean
(``--cache``) explicit (``--cache=true``), so it never swallows the CONTEXT
argument that follows it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import click

__all__ = ["KanikoCompatibleCommand", "Normalized", "go_bool", "go_duration_seconds", "normalize"]

NOTES_KEY = "wharfie.kaniko_notes"

# kaniko's deprecated flag names (root.go, checkNoDeprecatedFlags and the whitelist flag).
DEPRECATED = {"--whitelist-var-run": "--ignore-var-run", "--snapshotMode": "--snapshot-mode",
              "--customPlatform": "--custom-platform", "--tarPath": "--tar-path"}
# logrus levels wharfie has no match for, and the one it calls warn.
VERBOSITY = {"trace": "debug", "fatal": "error", "panic": "error", "warning": "warn"}

_GO_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_GO_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})
_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}


def go_bool(text: str, flag: str) -> bool:
    """A boolean as Go's strconv.ParseBool reads it (what kaniko's flags and KANIKO_NO_PUSH accept)."""
    if text in _GO_TRUE:
        return True
    if text in _GO_FALSE:
        return False
    raise click.BadParameter(f"expected true or false, got {text!r}", param_hint=flag)


def go_duration_seconds(text: str) -> int | None:
    """Whole seconds of a Go duration (``336h0m0s``, ``1h30m``, ``90s``), or None when `text` is not one."""
    if not text or text == "0":
        return 0 if text == "0" else None
    position, total = 0, 0.0
    for match in _GO_DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _GO_UNIT_SECONDS[match.group(2)]
        position = match.end()
    return round(total) if position == len(text) else None


@dataclass
class Normalized:
    args: list[str]
    notes: list[str] = field(default_factory=list)  # what was rewritten, for -v debug (never values: they may be secret)


@dataclass(frozen=True)
class _Spec:
    """How one option of the command takes its value."""

    flag: bool  # a boolean switch: --no-push
    optional_value: bool  # --cache[=true|false]
    takes_value: bool  # --destination REF


def _specs(command: click.Command) -> dict[str, _Spec]:
    out: dict[str, _Spec] = {}
    for param in command.params:
        if not isinstance(param, click.Option):
            continue
        optional = bool(getattr(param, "_flag_needs_value", False))
        spec = _Spec(flag=param.is_flag and not optional, optional_value=optional,
                     takes_value=not param.is_flag and not optional and not param.count)
        for name in (*param.opts, *param.secondary_opts):
            out[name] = spec
    return out


def _rewrite_value(name: str, value: str, notes: list[str]) -> str | None:
    """A value in kaniko's spelling in wharfie's; None drops the flag (its value is wharfie's default)."""
    if name in ("-v", "--verbosity") and value in VERBOSITY:
        notes.append(f"--verbosity {value} is {VERBOSITY[value]} here")
        return VERBOSITY[value]
    if name == "--cache-ttl":
        seconds = go_duration_seconds(value)
        return f"{seconds}s" if seconds is not None else value
    if name == "--compression-level" and value == "-1":
        return None  # kaniko's default: the compressor's own level
    return value


def _rewrite(args: Sequence[str], specs: Mapping[str, _Spec], notes: list[str]) -> list[str]:
    out: list[str] = []
    pending = list(args)
    while pending:
        arg = pending.pop(0)
        if arg == "--":
            return [*out, arg, *pending]
        if arg.startswith("--"):
            name, equals, value = arg.partition("=")
            if name in DEPRECATED:
                notes.append(f"{name} is deprecated in kaniko: {DEPRECATED[name]}")
                name = DEPRECATED[name]
            spec = specs.get(name)
        elif arg.startswith("-") and len(arg) > 2 and specs.get(arg[:2], _Spec(False, False, False)).takes_value:
            name, value = arg[:2], arg[2:].removeprefix("=")  # pflag: -vdebug and -v=debug
            equals, spec = "=", specs[name]
        else:
            name, equals, value, spec = arg, "", "", specs.get(arg)
        if spec is None:
            out.append(arg)  # an argument, or an unknown option click will name
        elif spec.flag:
            if not equals or go_bool(value, name):
                out.append(name)  # --no-push=false is the default: nothing to pass
        elif spec.optional_value:
            out.append(f"{name}={value}" if equals else f"{name}=true")
        elif spec.takes_value:
            if not equals:
                if not pending:
                    out.append(name)  # click says the value is missing
                    continue
                value = pending.pop(0)
            rewritten = _rewrite_value(name, value, notes)
            if rewritten is not None:
                out += [name, rewritten]
        else:
            out.append(arg)
    return out


def _from_environment(args: list[str], environ: Mapping[str, str], notes: list[str]) -> list[str]:
    """kaniko's KANIKO_* variables (root.go's validateFlags, config.KanikoDir), read after the flags as kaniko does."""
    tail: list[str] = []
    if environ.get("KANIKO_NO_PUSH"):  # overrides --no-push, as in kaniko
        try:
            no_push = go_bool(environ["KANIKO_NO_PUSH"], "KANIKO_NO_PUSH")
        except click.BadParameter as exc:
            raise click.UsageError(f"KANIKO_NO_PUSH: {exc.message}") from None
        args = [a for a in args if a != "--no-push"]
        tail += ["--no-push"] if no_push else []
        notes.append(f"KANIKO_NO_PUSH: {'no push' if no_push else 'push'}")
    for variable, flag in (("KANIKO_REGISTRY_MIRROR", "--registry-mirror"), ("KANIKO_REGISTRY_MAP", "--registry-map")):
        if environ.get(variable):
            tail += [flag, environ[variable]]
            notes.append(f"{variable}: {flag} {environ[variable]}")
    if environ.get("KANIKO_DIR") and not any(a == "--kaniko-dir" or a.startswith("--kaniko-dir=") for a in args):
        tail += ["--kaniko-dir", environ["KANIKO_DIR"]]  # the flag wins over the variable
        notes.append(f"KANIKO_DIR: --kaniko-dir {environ['KANIKO_DIR']}")
    if "--" in args:
        cut = args.index("--")
        return [*args[:cut], *tail, *args[cut:]]
    return [*args, *tail]


def normalize(args: Sequence[str], command: click.Command, environ: Mapping[str, str]) -> Normalized:
    """`args` with kaniko's spellings and KANIKO_* variables turned into `command`'s own flags."""
    notes: list[str] = []
    rewritten = _rewrite(args, _specs(command), notes)
    return Normalized(_from_environment(rewritten, environ, notes), notes)


class KanikoCompatibleCommand(click.Command):
    """A click command that reads kaniko's command line too (see `normalize`); notes go to ``ctx.meta``."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        normalized = normalize(args, self, os.environ)
        ctx.meta[NOTES_KEY] = normalized.notes
        return super().parse_args(ctx, normalized.args)
