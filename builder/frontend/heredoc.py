"""The heredoc-aware reading pass: Dockerfile text to logical lines, keeping line numbers.

Why: dockerfile-parse does not know heredocs (it would split a ``RUN <<EOT``
body into bogus instructions) and differs from BuildKit in details users
meet: comment lines inside continuations, the ``# escape=`` directive, BOMs,
quotes in flags. This is a port of BuildKit's ``parser.Parse``: physical lines
are joined on the escape token into logical lines, each split into keyword,
``--flags`` and arguments; when a RUN, COPY or ADD (also under ONBUILD) in
shell form holds a word ``[n]<<[-]WORD``, the following lines up to ``WORD``
are read verbatim as that heredoc's body, so the next instruction keeps its
true line number. A quoted terminator turns off expansion; ``<<-`` strips
leading tabs. Instruction semantics are `builder.frontend.dockerfile`'s job.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from builder.frontend.limits import MAX_DOCKERFILE_SIZE, MAX_HEREDOCS, MAX_INSTRUCTIONS, MAX_LINE_LENGTH
from builder.frontend.shell import ExpansionError, Lexer

__all__ = [
    "HEREDOC_INSTRUCTIONS",
    "Heredoc",
    "HeredocError",
    "HeredocRun",
    "LineError",
    "Node",
    "ReadResult",
    "chomp_tabs",
    "extract_flags",
    "heredoc_run",
    "heredocs_in_line",
    "parse_heredoc",
    "read_bodies",
    "read_nodes",
    "scratch_file_name",
    "split_command",
]

HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})

_HEREDOC_RE = re.compile(r"^(\d*)<<(-?)\s*([^<]*)\Z")
_LEADING_TABS = re.compile(r"^\t+", re.MULTILINE)
_FIND_LEXER = Lexer("\\", raw_quotes=True, raw_escapes=True, skip_unset=True, heredoc_words=True)
_NAME_LEXER = Lexer("\\", skip_unset=True)
_RAW_NAME_LEXER = Lexer("\\", skip_unset=True, raw_quotes=True)


class HeredocError(ValueError):
    """A heredoc is malformed or never terminated."""


@dataclass(frozen=True, kw_only=True)
class Heredoc:
    """One heredoc: its terminator name and the body exactly as written."""

    name: str
    content: str = ""  # body lines with their line endings, tabs not yet chomped
    expand: bool = True  # unquoted terminator: COPY/ADD expand $VAR in the body
    chomp: bool = False  # written <<-: leading tabs are removed from each body line
    fd: int = 0  # the n of "RUN n<<EOF"
    line: int = 0  # 1-based line of the first body line (the terminator's when the body is empty)

    @property
    def text(self) -> str:
        """The body with `chomp` applied: what the file (or the script) holds."""
        return chomp_tabs(self.content) if self.chomp else self.content


def scratch_file_name(name: str) -> str | None:
    """The file a COPY/ADD heredoc named `name` becomes, or None when it cannot be one.

    BuildKit writes each heredoc with Mkfile into an empty scratch filesystem,
    the name cleaned inside that root: `../x` is the file `x`, while `a/b` or
    `/tmp/x` need a directory the scratch does not have and fail. A name is
    therefore one path component after cleaning, never a path on the host.
    """
    parts = [part for part in posixpath.normpath("/" + name).split("/") if part]
    return parts[0] if len(parts) == 1 else None


def chomp_tabs(text: str) -> str:
    """Remove leading tabs from every line (the ``<<-`` form)."""
    return _LEADING_TABS.sub("", text)


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a single word denotes (``<<EOF``, ``<<-'EOF'``, ``3<<EOF``), or None."""
    match = _HEREDOC_RE.match(word)
    if not match or not match.group(3):
        return None
    fd, chomp, rest = match.groups()
    try:
        words = _NAME_LEXER.process_words(rest, {})
        if len(words) != 1:
            return None
        raw_words = _RAW_NAME_LEXER.process_words(rest, {})
    except ExpansionError as exc:
        raise HeredocError(str(exc)) from None
    if len(raw_words) != 1:
        raise HeredocError(f"internal lexing of heredoc produced inconsistent results: {rest}")
    quotes = words[0].count("'") + words[0].count('"')
    raw_quotes = raw_words[0].count("'") + raw_words[0].count('"')
    return Heredoc(name=words[0], expand=quotes == raw_quotes, chomp=chomp == "-", fd=int(fd or 0))


def heredocs_in_line(line: str) -> list[Heredoc]:
    """The heredocs an instruction line opens, in order, without their bodies."""
    try:
        words = _FIND_LEXER.process_words(line, {})
    except ExpansionError:
        return []  # BuildKit ignores a line the lexer cannot split: it has no heredocs
    found = []
    for word in words:
        heredoc = parse_heredoc(word)
        if heredoc is not None:
            found.append(heredoc)
    return found


def read_bodies(lines: Sequence[str], pos: int, heredocs: Sequence[Heredoc]) -> tuple[list[Heredoc], int]:
    """Read the body of each heredoc from ``lines[pos:]`` (line endings kept).

    Returns the heredocs with content and line set, and the index of the first
    line after the last terminator. Raises HeredocError if a terminator is missing.
    """
    done = []
    for heredoc in heredocs:
        first = pos + 1
        body = []
        while True:
            if pos >= len(lines):
                raise HeredocError("unterminated heredoc")
            raw = lines[pos]
            pos += 1
            candidate = raw.rstrip("\r\n")
            if heredoc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == heredoc.name:
                break
            body.append(raw)
        done.append(replace(heredoc, content="".join(body), line=first))
    return done, pos


@dataclass(frozen=True)
class HeredocRun:
    """How BuildKit runs a shell-form RUN that has heredocs.

    Exactly one of the two is set: `script` is the text for ``SHELL + [script]``;
    `executable` is a heredoc starting with ``#!`` to be written as a 0755 file
    (BuildKit mounts it at ``/dev/pipes/<name>``) and executed directly.
    """

    script: str | None = None
    executable: Heredoc | None = None


def heredoc_run(command: str, heredocs: Sequence[Heredoc]) -> HeredocRun:
    """What a RUN with heredocs executes, following BuildKit's dispatchRun."""
    if not heredocs:
        return HeredocRun(script=command)
    only = parse_heredoc(command)
    if only is not None:
        first = heredocs[0]
        if first.content.startswith("#!"):
            return HeredocRun(executable=first)
        return HeredocRun(script=first.text)
    full = command
    for heredoc in heredocs:
        full += "\n" + heredoc.content + heredoc.name
    return HeredocRun(script=full)


class LineError(ValueError):
    """A problem found while reading lines; `line` is the 1-based line at fault."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class Node:
    """One instruction as read: keyword as written, raw flags, argument text, heredocs."""

    keyword: str
    flags: tuple[str, ...]
    rest: str
    original: str  # the logical line, continuations joined, stripped
    line: int
    end_line: int  # the last line, heredoc terminators included
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True)
class ReadResult:
    nodes: tuple[Node, ...]
    escape: str = "\\"
    syntax: str | None = None
    warnings: tuple[str, ...] = ()


_WS = re.compile(r"[\t\v\f\r ]+")
_DIRECTIVE = re.compile(r"^([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


class _Directives:
    """Parser directives (``# escape=``, ``# syntax=``), valid only at the top of the file."""

    def __init__(self) -> None:
        self.syntax: str | None = None
        self.done = False
        self.seen: set[str] = set()
        self._set_escape("\\")

    def _set_escape(self, token: str) -> None:
        if token not in ("`", "\\"):
            raise ValueError(f"invalid escape token '{token}' does not match ` or \\")
        self.escape = token
        esc = re.escape(token)
        self.continuation = re.compile(rf"([^{esc}]){esc}[ \t]*\Z|^{esc}[ \t]*\Z")

    def check(self, line: str) -> None:
        if self.done:
            return
        match = _DIRECTIVE.match(line[1:].lstrip()) if line.startswith("#") else None
        key = match.group(1).lower() if match else ""
        if match is None or key not in ("escape", "syntax", "check"):
            self.done = True
            return
        if key in self.seen:
            raise ValueError(f"only one {key} parser directive can be used")
        self.seen.add(key)
        if key == "escape":
            self._set_escape(match.group(2))
        elif key == "syntax":
            self.syntax = match.group(2)

    def trim_continuation(self, line: str) -> tuple[str, bool]:
        """Remove a trailing escape token; return the line and whether the instruction ends here."""
        if self.continuation.search(line):
            return self.continuation.sub(r"\1", line), False
        return line, True


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _process(directives: _Directives, raw: str, line: int, *, strip_left: bool) -> str:
    text = raw.rstrip("\r\n")
    if strip_left:
        text = text.lstrip()
    try:
        directives.check(text)
    except ValueError as exc:
        raise LineError(str(exc), line) from None
    return "" if _is_comment(text) else text


def _check_text(text: str, lines: Sequence[str]) -> None:
    """Refuse what no instruction can hold (a NUL byte: exec, paths and the kernel refuse it) and what is
    too big to read safely (builder/limits.py)."""
    limit = MAX_DOCKERFILE_SIZE.value
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise LineError(MAX_DOCKERFILE_SIZE.exceeded("the Dockerfile"), None)
    for number, line in enumerate(lines, 1):
        if len(line) > MAX_LINE_LENGTH.value:
            raise LineError(MAX_LINE_LENGTH.exceeded(f"a line of {len(line)} characters"), number)
    if "\0" in text:
        nul_line = text.count("\n", 0, text.index("\0")) + 1
        raise LineError("a NUL byte (\\0) in the Dockerfile: not a text file?", nul_line)


def read_nodes(text: str) -> ReadResult:
    """Read a Dockerfile into nodes with their line spans, heredoc bodies attached."""
    text = text.removeprefix("\ufeff")
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])
    _check_text(text, lines)
    directives = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    pos = 0
    while pos < len(lines):
        start = pos + 1
        logical, pos, empty_continuation = _logical_line(lines, pos, directives)
        if logical is None:
            continue
        if empty_continuation:
            warnings.append(f"line {start}: empty continuation line found in: {logical.strip()}")
        if len(nodes) == MAX_INSTRUCTIONS.value:
            raise LineError(MAX_INSTRUCTIONS.exceeded("the Dockerfile's instructions"), start)
        node, pos = _make_node(logical, lines, pos, start)
        nodes.append(node)
    if not nodes:
        raise LineError("file with no instructions", len(lines) or None)
    return ReadResult(tuple(nodes), directives.escape, directives.syntax, tuple(warnings))


def _logical_line(lines: Sequence[str], pos: int, directives: _Directives) -> tuple[str | None, int, bool]:
    """Join the physical lines of one instruction; None when the line is blank or a comment."""
    text = _process(directives, lines[pos], pos + 1, strip_left=True)
    pos += 1
    text, done = directives.trim_continuation(text)
    if done and not text:
        return None, pos, False
    parts = [text]
    empty_continuation = False
    while not done and pos < len(lines):
        raw = lines[pos]
        text = _process(directives, raw, pos + 1, strip_left=False)
        pos += 1
        if _is_comment(raw):
            continue
        if not text.strip():
            empty_continuation = True
            continue
        text, done = directives.trim_continuation(text)
        parts.append(text)
    return "".join(parts), pos, empty_continuation


def _make_node(logical: str, lines: Sequence[str], pos: int, start: int) -> tuple[Node, int]:
    keyword, flags, rest = split_command(logical)
    docs: list[Heredoc] = []
    if "<<" in logical and _can_contain_heredoc(keyword, rest):
        found = heredocs_in_line(logical)
        if len(found) > MAX_HEREDOCS.value:
            raise LineError(MAX_HEREDOCS.exceeded(f"{len(found)} heredocs"), start)
        try:
            docs, pos = read_bodies(lines, pos, found)
        except HeredocError as exc:
            raise LineError(str(exc), start) from None
    return Node(keyword, tuple(flags), rest, logical.strip(), start, pos, tuple(docs)), pos


def _can_contain_heredoc(keyword: str, rest: str) -> bool:
    if keyword.lower() == "onbuild":
        keyword, _, rest = split_command(rest)
    return keyword.lower() in HEREDOC_INSTRUCTIONS and not _is_json_array(rest)


def _is_json_array(rest: str) -> bool:
    text = rest.lstrip()
    if not text.startswith("["):
        return False
    try:
        value = json.loads(text, parse_constant=float)
    except (ValueError, RecursionError):  # nested too deep for the decoder: no array of strings either
        return False
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def split_command(line: str) -> tuple[str, list[str], str]:
    """Split a logical line into keyword, ``--flags`` and the remaining argument text."""
    parts = _WS.split(line.strip(), maxsplit=1)
    flags: list[str] = []
    rest = ""
    if len(parts) == 2:
        rest, flags = extract_flags(parts[1])
    return parts[0], flags, rest.strip()


def extract_flags(text: str) -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words (quotes and backslashes processed) and the text after them."""
    words: list[str] = []
    word: list[str] = []  # characters: `str +=` here was quadratic in a long flag
    phase = "space"
    quote = ""
    blank_ok = False
    pos = 0
    n = len(text)
    while pos <= n:
        ch = text[pos] if pos < n else ""
        if phase == "space":
            if pos == n:
                break
            if ch.isspace():
                pos += 1
                continue
            if ch != "-" or pos + 1 == n or text[pos + 1] != "-":
                return text[pos:], words
            phase = "word"
        if pos == n:
            if word != ["-", "-"] and (blank_ok or word):
                words.append("".join(word))
            break
        pos += 1
        if phase == "word" and ch.isspace():
            if word == ["-", "-"]:
                return text[pos - 1 :], words
            if blank_ok or word:
                words.append("".join(word))
            phase, word, blank_ok = "space", [], False
        elif phase == "word" and ch in "'\"":
            phase, quote, blank_ok = "quote", ch, True
        elif phase == "quote" and ch == quote:
            phase = "word"
        elif ch == "\\":
            if pos == n:
                phase = "word"
                continue  # a backslash at the very end is dropped
            word.append(text[pos])
            pos += 1
        else:
            word.append(ch)
    return "", words
