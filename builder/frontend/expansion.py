"""Docker's builder-side expansion of one instruction's fields, with `builder.frontend.shell`'s rules.

Split from the lexer so the frontend layers one way, as BuildKit's do: the shell
lexer imports nothing of the frontend, the line reader (heredocs) stands on it,
the instructions on the line reader, and this expansion on the instructions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TypedDict

from builder.frontend import instructions as ins
from builder.frontend.heredoc import Heredoc
from builder.frontend.shell import ExpansionError, Lexer
from oci.errors import DockerfileError

__all__ = ["expand_instruction"]


class _Expander:
    """Expansion of one instruction's words with one environment."""

    def __init__(self, env: Mapping[str, str], escape: str) -> None:
        self.env = env
        self.lexer = Lexer(escape)
        self.raw = Lexer("\\", skip_process_quotes=True)  # heredoc bodies: BuildKit always uses '\\' here
        self.unmatched: set[str] = set()  # variables used but not set, for the UndefinedVar warning

    def word(self, value: str) -> str:
        result = self.lexer.process(value, self.env)
        self.unmatched |= result.unmatched
        return result.text

    def opt(self, value: str | None) -> str | None:
        return None if value is None else self.word(value)

    def words(self, values: Iterable[str]) -> tuple[str, ...]:
        return tuple(self.word(value) for value in values)

    def split(self, value: str) -> list[str]:
        return self.lexer.process_words(value, self.env)

    def heredoc(self, doc: Heredoc) -> Heredoc:
        if not doc.expand:
            return doc
        return replace(doc, content=self.raw.process_word(doc.text, self.env), chomp=False, expand=False)


def expand_instruction(
    instr: ins.Instruction, env: Mapping[str, str], *, escape: str = "\\", filename: str = "Dockerfile",
    unmatched: set[str] | None = None,
) -> ins.Instruction:
    """A copy of `instr` with docker's builder-side expansion applied, using `env`.

    Expanded: FROM image/--platform, ENV and LABEL keys and values, ARG
    defaults, COPY/ADD sources, destination, --chown, --chmod, --from,
    --exclude, ADD --checksum, heredoc bodies of COPY/ADD with an unquoted
    terminator, EXPOSE (then normalised to "80/tcp"), VOLUME, USER, WORKDIR,
    STOPSIGNAL and RUN --mount values. RUN/CMD/ENTRYPOINT text, SHELL,
    HEALTHCHECK, ONBUILD and MAINTAINER are left alone, as docker does.
    """
    expander = _Expander(env, escape)
    try:
        expanded = _expand_fields(instr, expander)
    except (ExpansionError, ins.MountSyntaxError, ins.PortError) as exc:
        raise DockerfileError(str(exc), file=filename, line=instr.line) from None
    if unmatched is not None:
        unmatched |= expander.unmatched
    return expanded


def _expand_fields(instr: ins.Instruction, x: _Expander) -> ins.Instruction:
    if isinstance(instr, ins.FROM):
        return replace(instr, image=x.word(instr.image), platform=x.opt(instr.platform))
    if isinstance(instr, ins.ENV | ins.LABEL):
        return replace(instr, pairs=tuple((x.word(k), x.word(v)) for k, v in instr.pairs))
    if isinstance(instr, ins.ARG):
        return replace(instr, pairs=tuple((k, x.opt(v)) for k, v in instr.pairs))
    if isinstance(instr, ins.COPY):
        instr = replace(instr, from_=x.opt(instr.from_))
        return replace(instr, **_copy_changes(instr, x))
    if isinstance(instr, ins.ADD):
        instr = replace(instr, checksum=x.opt(instr.checksum))
        return replace(instr, **_copy_changes(instr, x))
    if isinstance(instr, ins.EXPOSE):
        return replace(instr, ports=ins.normalize_ports([w for port in instr.ports for w in x.split(port)]))
    if isinstance(instr, ins.VOLUME):
        return replace(instr, paths=x.words(instr.paths))
    if isinstance(instr, ins.USER):
        return replace(instr, user=x.word(instr.user))
    if isinstance(instr, ins.WORKDIR):
        return replace(instr, path=x.word(instr.path))
    if isinstance(instr, ins.STOPSIGNAL):
        return replace(instr, signal=x.word(instr.signal))
    if isinstance(instr, ins.RUN) and instr.mount_specs:
        return replace(instr, mounts=tuple(ins.parse_mount(spec, x.word) for spec in instr.mount_specs))
    return instr


class _CopyChanges(TypedDict):
    sources: tuple[str, ...]
    dest: str
    chown: str | None
    chmod: str | None
    exclude: tuple[str, ...]
    heredocs: tuple[Heredoc, ...]


def _copy_changes(instr: ins.COPY | ins.ADD, x: _Expander) -> _CopyChanges:
    return {
        "sources": x.words(instr.sources),
        "dest": x.word(instr.dest),
        "chown": x.opt(instr.chown),
        "chmod": x.opt(instr.chmod),
        "exclude": x.words(instr.exclude),
        "heredocs": tuple(x.heredoc(doc) for doc in instr.heredocs),
    }
