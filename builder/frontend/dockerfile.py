"""Dockerfile text to typed, validated instructions, with docker's rules and line numbers.

Parsing is our own port of BuildKit's parser rather than dockerfile-parse's split: that
library does not know heredocs (it splits a `RUN <<EOF` body into bogus
instructions) nor reports where each instruction ends; tests keep it as an
oracle that our instruction names and line spans agree with it.

Why: a bad flag, a missing argument or a non-string JSON array must fail the
build before any step runs, with the line at fault, exactly where docker
would. `builder.heredoc.read_nodes` reads the lines (continuations, heredoc
bodies, parser directives); this module is a port of BuildKit's
``instructions.Parse``: per instruction, the flags it accepts, exec (JSON)
versus shell form, ``key=value`` word splitting, and the checks docker makes.
The order of instructions, stages and ARG scoping are `builder.stages`' job.
Nothing is expanded here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from builder.frontend import heredoc as hd
from builder.frontend import instructions as ins
from oci.errors import DockerfileError

__all__ = ["ParsedDockerfile", "parse", "parse_go_duration", "parse_trigger"]

_WS = re.compile(r"[\t\v\f\r ]+")
_STAGE_NAME = re.compile(r"^[a-z][a-z0-9-_.]*$")
_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9,
                   "h": 3600 * 10**9}  # fmt: skip


class _Error(Exception):
    """An instruction-level problem; the caller adds file and line."""


@dataclass(frozen=True)
class ParsedDockerfile:
    """All instructions of a file in order, and the parser directives that applied."""

    instructions: tuple[ins.Instruction, ...]
    escape: str = "\\"
    syntax: str | None = None
    warnings: tuple[str, ...] = ()


_Node = hd.Node
_Parser = Callable[[_Node, str], ins.Instruction]


def _parse_json(rest: str) -> list[str] | None:
    """The exec-form array, or None when `rest` is not a JSON array (then it is shell form)."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None

    def reject(name: str) -> None:
        raise ValueError(name)

    try:
        value = json.loads(text, parse_constant=reject)
    except (ValueError, RecursionError):  # nested too deep for the decoder: shell form, as invalid JSON is
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(item, str) for item in value):
        raise _Error("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def _ws_words(rest: str) -> list[str]:
    return _WS.split(rest) if rest else []


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (BuildKit's parseWords)."""
    words: list[str] = []
    word: list[str] = []  # characters: `str +=` here was quadratic in a long line
    in_word = blank_ok = False
    quote = ""
    i = 0
    while i < len(rest):
        ch = rest[i]
        i += 1
        if not in_word and not quote:
            if ch.isspace():
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i == len(rest):
                    quote = ""
                    continue
                word.append(ch)
                ch = rest[i]
                i += 1
        elif ch.isspace():
            if blank_ok or word:
                words.append("".join(word))
            word, in_word, blank_ok = [], False, False
            continue
        elif ch in "'\"":
            quote, blank_ok = ch, True
        elif ch == escape:
            if i == len(rest):
                continue
            word.append(ch)
            ch = rest[i]
            i += 1
        word.append(ch)
    if in_word and (blank_ok or word):
        words.append("".join(word))
    return words


_BOOL, _STR, _STRS = "bool", "string", "strings"


@dataclass
class _FlagValues:
    """Flag values by name: a bool flag is False and a string flag None unless given."""

    values: dict[str, bool | str | list[str] | None]

    def text(self, name: str) -> str | None:
        value = self.values[name]
        assert value is None or isinstance(value, str)
        return value

    def texts(self, name: str) -> tuple[str, ...]:
        value = self.values[name]
        assert isinstance(value, list)
        return tuple(value)


def _flags(node: _Node, spec: Mapping[str, str]) -> _FlagValues:
    """Check a node's flags against `spec` (name -> kind), as BuildKit's BFlags.Parse."""
    values: dict[str, bool | str | list[str] | None] = {}
    for name, kind in spec.items():
        values[name] = False if kind == _BOOL else [] if kind == _STRS else None
    used: set[str] = set()
    for arg in node.flags:
        if not arg.startswith("--"):
            raise _Error(f"Arg should start with -- : {arg}")
        if arg == "--":
            break
        name, has_value, value = arg[2:].partition("=")
        if name not in spec:
            raise _Error(f"Unknown flag: {name}")
        kind = spec[name]
        if name in used and kind != _STRS:
            raise _Error(f"Duplicate flag specified: {name}")
        used.add(name)
        if kind == _BOOL:
            if has_value and not value:
                raise _Error(f"Missing a value on flag: {name}")
            if value.lower() not in ("", "true", "false"):
                raise _Error(f"Expecting boolean value for flag {name}, not: {value}")
            values[name] = value.lower() != "false"
        elif not has_value:
            raise _Error(f"Missing a value on flag: {name}")
        elif kind == _STRS:
            previous = values[name]
            values[name] = [*previous, value] if isinstance(previous, list) else [value]
        else:
            values[name] = value
    return _FlagValues(values)


def _maybe_json(rest: str) -> tuple[ins.Command, bool]:
    if not rest:
        return "", False
    array = _parse_json(rest)
    return (tuple(array), True) if array is not None else (rest, False)


def _maybe_json_list(rest: str) -> list[str]:
    array = _parse_json(rest)
    return array if array is not None else _ws_words(rest)


def _one_arg(node: _Node, what: str) -> str:
    if not node.rest:
        raise _Error(f"{what} requires exactly one argument")
    return node.rest


def _parse_from(node: _Node, escape: str) -> ins.Instruction:
    args = _ws_words(node.rest)
    name = None
    if len(args) == 3 and args[1].lower() == "as":
        name = args[2].lower()
        if not _STAGE_NAME.match(name):
            raise _Error(
                f"invalid name for build stage: {args[2]!r}, name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise _Error("FROM requires either one or three arguments")
    flags = _flags(node, {"platform": _STR})
    return ins.FROM(image=args[0], platform=flags.text("platform"), stage_name=name)


def _parse_run(node: _Node, escape: str) -> ins.Instruction:
    flags = _flags(node, {"mount": _STRS, "network": _STR, "security": _STR})
    network, security = flags.text("network"), flags.text("security")
    if network is not None and network not in ("default", "none", "host"):
        raise _Error(f"unsupported network mode {network!r}")
    if security is not None and security not in ("sandbox", "insecure"):
        raise _Error(f"unsupported security mode {security!r}")
    specs = flags.texts("mount")
    try:
        mounts = tuple(ins.parse_mount(spec) for spec in specs)
    except ins.MountSyntaxError as exc:
        raise _Error(str(exc)) from None
    command, is_exec = _maybe_json(node.rest)
    return ins.RUN(
        command=command,
        is_exec=is_exec,
        heredocs=node.heredocs,
        mounts=mounts,
        mount_specs=specs,
        network=network,
        security=security,
    )


def _parse_cmdlike(cls: type[ins.CMD | ins.ENTRYPOINT]) -> _Parser:
    def parse_cmdlike(node: _Node, escape: str) -> ins.Instruction:
        _flags(node, {})
        command, is_exec = _maybe_json(node.rest)
        return cls(command=command, is_exec=is_exec)

    return parse_cmdlike


def _parse_name_values(node: _Node, escape: str, what: str) -> tuple[tuple[str, str], ...]:
    """ENV and LABEL: ``key=value ...`` or the old ``key value`` form."""
    _flags(node, {})
    words = _parse_words(node.rest, escape)
    if not words:
        raise _Error(f"{what} requires at least one argument")
    if "=" not in words[0]:
        parts = _WS.split(node.rest, maxsplit=1)
        if len(parts) < 2:
            raise _Error(f"{what} must have two arguments")
        pairs = [(parts[0], parts[1])]
    else:
        pairs = []
        for word in words:
            if "=" not in word:
                raise _Error(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
            key, _, value = word.partition("=")
            pairs.append((key, value))
    if any(not key for key, _ in pairs):
        raise _Error(f"{what} names can not be blank")
    return tuple(pairs)


def _parse_env(node: _Node, escape: str) -> ins.Instruction:
    return ins.ENV(pairs=_parse_name_values(node, escape, "ENV"))


def _parse_label(node: _Node, escape: str) -> ins.Instruction:
    return ins.LABEL(pairs=_parse_name_values(node, escape, "LABEL"))


def _parse_arg(node: _Node, escape: str) -> ins.Instruction:
    words = _parse_words(node.rest, escape)  # flags are not checked for ARG, as in docker
    if not words:
        raise _Error("ARG requires at least one argument")
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        key, has_value, value = word.partition("=")
        if has_value and not key:
            raise _Error("ARG names can not be blank")
        pairs.append((key, value if has_value else None))
    return ins.ARG(pairs=tuple(pairs))


def _parse_sources(node: _Node, what: str) -> tuple[list[str], str, list[hd.Heredoc]]:
    args = _maybe_json_list(node.rest)
    if len(args) < 2:
        raise _Error(
            f"{what} requires at least two arguments, but only one was provided. Destination could not be determined"
        )
    if _heredoc_word(args[-1]) is not None:
        raise _Error(f"{what} cannot accept a heredoc as a destination")
    bodies = {doc.name: doc for doc in node.heredocs}
    sources: list[str] = []
    inline: list[hd.Heredoc] = []
    for src in args[:-1]:
        word = _heredoc_word(src)
        if word is None:
            sources.append(src)
        else:
            body = bodies.get(word.name, word)
            name = hd.scratch_file_name(word.name)
            if name is None:
                raise _Error(f"{what} heredoc name {word.name!r} is not a file name (a heredoc becomes one file, "
                             "named without a directory)")
            inline.append(replace(body, name=name, chomp=word.chomp, expand=word.expand))
    return sources, args[-1], inline


def _heredoc_word(word: str) -> hd.Heredoc | None:
    try:
        return hd.parse_heredoc(word)
    except hd.HeredocError:
        return None


_COPY_FLAGS = {"chown": _STR, "chmod": _STR, "link": _BOOL, "exclude": _STRS}  # COPY's and ADD's alike


def _parse_copy_like(cls: type[ins.COPY | ins.ADD], own_flags: Mapping[str, str]) -> _Parser:
    """COPY and ADD: the same sources, destination and shared flags, plus each one's own flags
    (a flag `some-name` fills the field `some_name`; `from` fills `from_`)."""

    def parse_copy_like(node: _Node, escape: str) -> ins.Instruction:
        flags = _flags(node, {**_COPY_FLAGS, **own_flags})
        sources, dest, inline = _parse_sources(node, cls.keyword)
        fields = {("from_" if name == "from" else name.replace("-", "_")): tuple(value) if isinstance(value, list)
                  else value for name, value in flags.values.items()}
        return cls(sources=tuple(sources), dest=dest, heredocs=tuple(inline), **fields)  # type: ignore[arg-type]

    return parse_copy_like


def _parse_expose(node: _Node, escape: str) -> ins.Instruction:
    ports = _ws_words(node.rest)
    if not ports:
        raise _Error("EXPOSE requires at least one argument")
    _flags(node, {})
    return ins.EXPOSE(ports=tuple(sorted(ports)))


def _parse_volume(node: _Node, escape: str) -> ins.Instruction:
    paths = _maybe_json_list(node.rest)
    if not paths:
        raise _Error("VOLUME requires at least one argument")
    _flags(node, {})
    if any(not path.strip() for path in paths):
        raise _Error("VOLUME specified can not be an empty string")
    return ins.VOLUME(paths=tuple(path.strip() for path in paths))


def _parse_shell(node: _Node, escape: str) -> ins.Instruction:
    _flags(node, {})
    array = _parse_json(node.rest) if node.rest else []
    if array is None:
        raise _Error("SHELL requires the arguments to be in JSON form")
    if not array:
        raise _Error("SHELL requires at least one argument")
    return ins.SHELL(shell=tuple(array))


def _parse_simple(what: str, make: Callable[[str], ins.Instruction], check_flags: bool = True) -> _Parser:
    """USER, WORKDIR, MAINTAINER, STOPSIGNAL: the whole argument text is the one value."""

    def parse_simple(node: _Node, escape: str) -> ins.Instruction:
        value = _one_arg(node, what)
        if check_flags:
            _flags(node, {})
        return make(value)

    return parse_simple


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration, in nanoseconds ("1m30s", "1.5h", "300ms")."""
    rest = text
    negative = False
    if rest[:1] in ("+", "-"):
        negative, rest = rest[0] == "-", rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise _Error(f"time: invalid duration {text!r}")
    total = 0
    while rest:
        match = re.match(r"(\d*)(?:\.(\d*))?([^\d.]*)", rest)
        assert match is not None
        whole, frac, unit = match.group(1), match.group(2) or "", match.group(3)
        if not whole and not frac:
            raise _Error(f"time: invalid duration {text!r}")
        if unit not in _DURATION_UNITS:
            raise _Error(f"time: {'missing' if not unit else 'unknown'} unit {unit!r} in duration {text!r}")
        scale = _DURATION_UNITS[unit]
        total += int(whole or "0") * scale + (int(frac) * scale // 10 ** len(frac) if frac else 0)
        rest = rest[match.end() :]
    return -total if negative else total


def _duration(value: str | None, name: str) -> int:
    if not value:
        return 0
    nanos = parse_go_duration(value)
    if 0 < nanos < 10**6 or nanos < 0:
        raise _Error(f'Interval "{name}" cannot be less than 1ms')
    return nanos


def _parse_healthcheck(node: _Node, escape: str) -> ins.Instruction:
    head, tail = (_WS.split(node.rest, maxsplit=1) + [""])[:2] if node.rest else ("", "")
    if not head:
        raise _Error("HEALTHCHECK requires at least one argument")
    kind = head.upper()
    command, is_exec = _maybe_json(tail.strip())
    if kind == "NONE":
        if command:
            raise _Error("HEALTHCHECK NONE takes no arguments")
        return ins.HEALTHCHECK(test=("NONE",))
    names = ("interval", "timeout", "start-period", "start-interval", "retries")
    flags = _flags(node, dict.fromkeys(names, _STR))
    if kind != "CMD":
        raise _Error(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not command:
        raise _Error("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *command) if is_exec else ("CMD-SHELL", str(command))
    retries = 0
    raw_retries = flags.text("retries")
    if raw_retries:
        if not re.fullmatch(r"[+-]?\d+", raw_retries):
            raise _Error(f'strconv.ParseInt: parsing "{raw_retries}": invalid syntax')
        retries = int(raw_retries)
        if retries < 0:
            raise _Error(f"--retries cannot be negative ({retries})")
    return ins.HEALTHCHECK(
        test=test,
        retries=retries,
        interval=_duration(flags.text("interval"), "interval"),
        timeout=_duration(flags.text("timeout"), "timeout"),
        start_period=_duration(flags.text("start-period"), "start-period"),
        start_interval=_duration(flags.text("start-interval"), "start-interval"),
    )


def _parse_onbuild(node: _Node, escape: str) -> ins.Instruction:
    if not node.rest:
        raise _Error("ONBUILD requires at least one argument")
    _flags(node, {})
    trigger = _WS.split(node.rest, maxsplit=1)[0].upper()
    if trigger == "ONBUILD":
        raise _Error("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise _Error(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", node.original)
    for doc in node.heredocs:
        expression += "\n" + doc.content + doc.name
    return ins.ONBUILD(expression=expression)


_PARSERS = {
    "from": _parse_from,
    "run": _parse_run,
    "cmd": _parse_cmdlike(ins.CMD),
    "entrypoint": _parse_cmdlike(ins.ENTRYPOINT),
    "env": _parse_env,
    "label": _parse_label,
    "arg": _parse_arg,
    "copy": _parse_copy_like(ins.COPY, {"from": _STR, "parents": _BOOL}),
    "add": _parse_copy_like(ins.ADD, {"checksum": _STR, "keep-git-dir": _BOOL}),
    "expose": _parse_expose,
    "volume": _parse_volume,
    "shell": _parse_shell,
    "user": _parse_simple("USER", lambda value: ins.USER(user=value)),
    "workdir": _parse_simple("WORKDIR", lambda value: ins.WORKDIR(path=value)),
    "maintainer": _parse_simple("MAINTAINER", lambda value: ins.MAINTAINER(maintainer=value)),
    "stopsignal": _parse_simple("STOPSIGNAL", lambda value: ins.STOPSIGNAL(signal=value), check_flags=False),
    "healthcheck": _parse_healthcheck,
    "onbuild": _parse_onbuild,
}


def _to_instruction(node: _Node, escape: str, filename: str) -> ins.Instruction:
    parser = _PARSERS.get(node.keyword.lower())
    if parser is None:
        raise DockerfileError(f"unknown instruction: {node.keyword}", file=filename, line=node.line)
    try:
        instr = parser(node, escape)
    except _Error as exc:
        raise DockerfileError(str(exc), file=filename, line=node.line) from None
    return replace(instr, line=node.line, end_line=node.end_line, original=node.original)


def parse(text: str, *, filename: str = "Dockerfile") -> ParsedDockerfile:
    """Parse a whole Dockerfile into instructions; raise DockerfileError with the line at fault."""
    try:
        read = hd.read_nodes(text)
    except hd.LineError as exc:
        raise DockerfileError(str(exc), file=filename, line=exc.line) from None
    result = tuple(_to_instruction(node, read.escape, filename) for node in read.nodes)
    return ParsedDockerfile(result, read.escape, read.syntax, read.warnings)


def parse_trigger(expression: str, *, line: int, filename: str = "Dockerfile") -> ins.Instruction:
    """Parse an ONBUILD trigger (from an image config or an ONBUILD instruction) as one instruction.

    BuildKit parses each trigger as a Dockerfile of its own; errors and the
    instruction carry `line`, the line of the FROM that inherited it.
    """
    try:
        parsed = parse(expression, filename=filename)
    except DockerfileError as exc:
        raise DockerfileError(f"ONBUILD trigger {expression!r}: {exc.reason}", file=filename, line=line) from None
    if len(parsed.instructions) != 1:
        raise DockerfileError("onbuild trigger should be a single expression", file=filename, line=line)
    first = parsed.instructions[0]
    if first.keyword in ("ONBUILD", "FROM", "MAINTAINER"):
        raise DockerfileError(f"{first.keyword} isn't allowed as an ONBUILD trigger", file=filename, line=line)
    return replace(first, line=line, end_line=line)
