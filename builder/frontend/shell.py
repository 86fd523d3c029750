"""Variable expansion and word splitting with the rules of docker's builder.

Why this exists: the builder, not a shell, expands ``$VAR`` in ADD, COPY, ENV,
EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults and a few
flags. Those rules are BuildKit's ``frontend/dockerfile/shell/lex.go`` (quotes,
the escape token, ``${VAR:-word}`` and friends, word splitting after expansion),
which differ from POSIX sh in small ways users nonetheless rely on, e.g. ``$$``
expands to the empty string and an unset variable is simply empty. `Lexer`
re-implements those rules; `builder.frontend.expansion.expand_instruction`
applies them to the fields of an instruction that docker expands. Nothing here
runs a shell.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from builder.frontend import shell_pattern
from builder.frontend.limits import MAX_EXPANDED_LENGTH, MAX_EXPANSION_DEPTH

__all__ = ["ExpansionError", "LexResult", "Lexer", "expand_word", "expand_words"]

_EOF = ""
_SPECIAL_PARAMS = "@*#?-$!0"
_SPACE_RUNS = re.compile(r"(\s+)")


class ExpansionError(ValueError):
    """A word could not be expanded (unterminated quote, bad substitution, ...)."""


@dataclass
class LexResult:
    """What one pass over a word produced."""

    text: str
    words: list[str]
    matched: set[str] = field(default_factory=set)
    unmatched: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Lexer:
    """Docker's shell-lexer. The options mirror BuildKit's ``shell.Lex`` fields.

    raw_quotes keeps quote characters in the output, raw_escapes keeps escape
    tokens, skip_process_quotes makes quotes ordinary characters, skip_unset
    leaves references to unset variables as written, heredoc_words keeps
    ``<<  NAME`` one word (used only to find heredocs).
    """

    escape: str = "\\"
    raw_quotes: bool = False
    raw_escapes: bool = False
    skip_process_quotes: bool = False
    skip_unset: bool = False
    heredoc_words: bool = False

    def process(self, word: str, env: Mapping[str, str]) -> LexResult:
        """Expand `word`; the result carries both the joined text and the split words."""
        scan = _Scanner(self, word, env)
        try:
            text, words = scan.stop_on(None, self.raw_escapes)
        except ExpansionError as exc:
            shown = word if len(word) <= 200 else word[:200] + "..."  # a message, not a copy of a huge word
            raise ExpansionError(f"failed to process {shown!r}: {exc}") from None
        return LexResult(text, words, scan.matched, scan.unmatched)

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand `word` into one string (quotes removed, spaces kept)."""
        return self.process(word, env).text

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand `word`, then split it on unquoted whitespace."""
        return self.process(word, env).words


def expand_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Expand one word the way docker expands ENV values, COPY paths, USER, ..."""
    return Lexer(escape).process_word(word, env)


def expand_words(word: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split the way docker expands each EXPOSE argument."""
    return Lexer(escape).process_words(word, env)


class _Words:
    """Word splitting as BuildKit's wordsStruct: expansions split, quotes do not.

    The current word is a list of pieces: `+=` on an attribute copies the whole
    string each time, which made a long value quadratic to expand.
    """

    def __init__(self) -> None:
        self.pieces: list[str] = []
        self.size = 0
        self.words: list[str] = []
        self.in_word = False

    def _end_word(self) -> None:
        self.words.append("".join(self.pieces))
        self.pieces, self.size, self.in_word = [], 0, False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.size:
                self._end_word()
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.add_raw_string(ch)

    def add_string(self, text: str) -> None:
        """`add_char` for each character, a run at a time (`\\s` is str.isspace's set)."""
        for run in _SPACE_RUNS.split(text):
            if run[:1].isspace():
                self.add_char(run[0])
            elif run:
                self.add_raw_string(run)

    def add_raw_string(self, text: str) -> None:
        self.pieces.append(text)
        self.size += len(text)
        self.in_word = True

    def result(self) -> list[str]:
        if self.size:
            self._end_word()
        return self.words


def _is_digit(ch: str) -> bool:
    return ch != _EOF and unicodedata.category(ch) == "Nd"


def _is_name_char(ch: str) -> bool:
    return ch != _EOF and (ch.isalpha() or _is_digit(ch) or ch == "_")


class _Scanner:
    """One expansion in progress: the input, a cursor and the variables seen."""

    def __init__(self, lexer: Lexer, text: str, env: Mapping[str, str]) -> None:
        self.lx = lexer
        self.text = text
        self.pos = 0
        self.env = env
        self.raw_escapes = lexer.raw_escapes
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()
        self.depth = 0  # ${...} nesting: each level is a few Python frames
        self.max_length = len(text) + MAX_EXPANDED_LENGTH.value
        self.handlers: dict[str, Callable[[], str]] = {"$": self.dollar}
        if not lexer.skip_process_quotes:
            self.handlers["'"] = self.single_quote
            self.handlers['"'] = self.double_quote
        if lexer.heredoc_words:
            self.handlers["<"] = self.possible_heredoc

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch != _EOF:
            self.pos += 1
        return ch

    def getenv(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            self.matched.add(name)
            return self.env[name], True
        self.unmatched.add(name)
        return "", False

    def stop_on(self, stop: str | None, raw_escapes: bool) -> tuple[str, list[str]]:
        """Consume up to `stop` (or the end); return the text and the split words."""
        saved, self.raw_escapes = self.raw_escapes, raw_escapes
        try:
            return self._stop_on(stop)
        finally:
            self.raw_escapes = saved

    def grown(self, size: int) -> None:
        """Stop a word whose expansion grows past the limit (`ENV A=$A$A`, forty times, would need terabytes)."""
        if size > self.max_length:
            raise ExpansionError(MAX_EXPANDED_LENGTH.exceeded(f"the expansion ({size} characters and more)"))

    def _stop_on(self, stop: str | None) -> tuple[str, list[str]]:
        out: list[str] = []
        size = 0
        words = _Words()
        while self.peek() != _EOF:
            ch = self.peek()
            if stop is not None and ch == stop:
                self.next()
                return "".join(out), words.result()
            handler = self.handlers.get(ch)
            if handler is not None:
                chunk = handler()
                size += len(chunk)
                self.grown(size)
                out.append(chunk)
                if ch == "$":
                    words.add_string(chunk)
                else:
                    words.add_raw_string(chunk)
                continue
            ch = self.next()
            if ch == self.lx.escape:
                if self.raw_escapes:
                    words.add_raw_char(ch)
                    out.append(ch)
                ch = self.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            out.append(ch)
        if stop is not None:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.result()

    def single_quote(self) -> str:
        out = []
        quote = self.next()
        if self.lx.raw_quotes:
            out.append(quote)
        while True:
            ch = self.next()
            if ch == _EOF:
                raise ExpansionError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out = []
        size = 0
        quote = self.next()
        if self.lx.raw_quotes:
            out.append(quote)
        while True:
            nxt = self.peek()
            if nxt == _EOF:
                raise ExpansionError("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = self.next()
                if self.lx.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                out.append(self.dollar())
                size += len(out[-1])
                self.grown(size)
                continue
            ch = self.next()
            if ch == self.lx.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if nxt == _EOF:
                    continue  # a lone escape at the end is dropped; the quote is still missing
                if nxt in ('"', "$", self.lx.escape):
                    ch = self.next()
            out.append(ch)

    def possible_heredoc(self) -> str:
        self.next()
        if self.peek() != "<":
            return "<"
        self.next()
        spaces = ""
        while self.peek() in (" ", "\t"):
            spaces += self.next()
        return "<<" + spaces

    def name(self) -> str:
        """Read a variable name: letters, digits, '_', or one special parameter."""
        chars: list[str] = []
        while self.peek() != _EOF:
            ch = self.peek()
            if not chars and _is_digit(ch):
                while _is_digit(self.peek()):
                    chars.append(self.next())
                return "".join(chars)
            if not chars and ch in _SPECIAL_PARAMS:
                return self.next()
            if not _is_name_char(ch):
                break
            chars.append(self.next())
        return "".join(chars)

    def dollar(self) -> str:
        self.next()
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            value, found = self.getenv(name)
            if not found and self.lx.skip_unset:
                return "$" + name
            return value
        self.next()
        if self.depth == MAX_EXPANSION_DEPTH.value:
            raise ExpansionError(MAX_EXPANSION_DEPTH.exceeded("the nesting of ${...}"))
        self.depth += 1
        try:
            return self.braced()
        finally:
            self.depth -= 1

    def braced(self) -> str:
        """What follows ``${``: a name, then ``}`` or a modifier."""
        if self.peek() == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if self.peek() in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self.name()
        ch = self.next()
        if ch == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if ch == "}":
            value, found = self.getenv(name)
            if not found and self.lx.skip_unset:
                return "${" + name + "}"
            return value
        if ch == ":":
            ch = self.next()
            return self.modifier(name, ch, ":" + ch, null_is_unset=True)
        if ch in ("+", "-", "?", "#", "%"):
            return self.modifier(name, ch, ch, null_is_unset=False)
        if ch == "/":
            return self.replace(name)
        shown = ch if ch.isprintable() else repr(ch)[1:-1]  # the message stays one line
        raise ExpansionError(f"unsupported modifier ({shown}) in substitution")

    def modifier(self, name: str, op: str, written: str, *, null_is_unset: bool) -> str:
        """``${name<op>word}`` for the operators - + ? # % (and their ':' forms)."""
        try:
            word, _ = self.stop_on("}", op in ("#", "%"))
        except ExpansionError:
            if self.peek() == _EOF:
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        value, found = self.getenv(name)
        if self.lx.skip_unset and not found:
            return "${" + name + written + word + "}"
        empty = not found or (null_is_unset and value == "")
        if op == "-":
            return word if empty else value
        if op == "+":
            return "" if empty else word
        if op == "?":
            if not found:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if op in ("#", "%"):
            greedy = word.startswith(op)
            if greedy:
                word = word[1:]
            trim = shell_pattern.trim_suffix if op == "%" else shell_pattern.trim_prefix
            try:
                return trim(word, value, longest=greedy)
            except shell_pattern.PatternError as exc:
                raise ExpansionError(str(exc)) from None
        raise ExpansionError(f"unsupported modifier ({written}) in substitution")

    def replace(self, name: str) -> str:
        """``${name/pattern/replacement}`` and ``${name//pattern/replacement}``."""
        replace_all = self.peek() == "/"
        if replace_all:
            self.next()
        try:
            pattern, _ = self.stop_on("/", True)
        except ExpansionError:
            if self.peek() == _EOF:
                raise ExpansionError("syntax error: missing '/' in ${}") from None
            raise
        try:
            replacement, _ = self.stop_on("}", True)
        except ExpansionError:
            if self.peek() == _EOF:
                raise ExpansionError("syntax error: missing '}'") from None
            raise
        value, found = self.getenv(name)
        if self.lx.skip_unset and not found:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        try:
            return shell_pattern.replace(pattern, value, replacement, every=replace_all)
        except shell_pattern.PatternError as exc:
            raise ExpansionError(str(exc)) from None

