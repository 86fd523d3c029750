"""The build context's ignore rules, with docker's .dockerignore semantics.

Why: which files reach a COPY (and the cache key) must be exactly what docker
would send, or builds diverge silently. The rules are moby/patternmatcher's
(each pattern filepath.Clean'ed, ``**`` for any depth, ``!`` exceptions with
the last matching pattern winning, a pattern matching a directory matching all
of its content) and the reading rules of its ignorefile package (``#`` comment
lines, blank lines, a leading ``/`` dropped). BuildKit prefers
``<Dockerfile>.dockerignore`` next to the Dockerfile over the context's
``.dockerignore``; so does `load_ignore`.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from builder.context.files import context_file
from builder.frontend.globmatch import BadPatternError, class_at, match_path, validate_pattern
from oci.errors import DockerfileError

__all__ = ["IgnoreMatcher", "Pattern", "go_clean", "load_ignore", "read_patterns"]


def go_clean(path: str) -> str:
    """Go's path.Clean: like posixpath.normpath, but a leading '//' collapses too."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned.startswith("//"):
        cleaned = "/" + cleaned.lstrip("/")
    return cleaned


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised as docker's ignorefile.ReadAll does."""
    patterns = []
    for index, line in enumerate(text.split("\n")):
        if index == 0:
            line = line.removeprefix("\ufeff")
        if line.startswith("#"):
            continue
        line = line.strip()
        if not line:
            continue
        invert = line.startswith("!")
        if invert:
            line = line[1:].strip()
        if line:
            line = go_clean(line)
            if len(line) > 1 and line.startswith("/"):
                line = line[1:]
        patterns.append("!" + line if invert else line)
    return patterns


class _Kind(Enum):
    EXACT = 1
    PREFIX = 2
    SUFFIX = 3
    REGEXP = 4


_LITERAL, _ONE, _STAR, _ANY, _DIRS, _CLASS = "literal", "one", "star", "any", "dirs", "class"
_CharClass = tuple[bool, list[tuple[str, str]]]  # (negated, ranges), as globmatch.class_at reads it
_Token = tuple[str, str | _CharClass | None]  # (kind, the character of a literal, the class, or None)


class _PathAutomaton:
    """A pattern's regular expression run as a bit-parallel automaton: time linear in the path, whatever the pattern.

    Why not `re`: patternmatcher hands the expression to Go's engine, which is
    linear; Python's backtracks, and ``**/**/**/**/**/**/**/**/x`` took 18 s on
    one path 30 directories deep (twelve ``**`` took hours). Bit j of a state:
    the first j tokens have matched; `inside` marks a ``(.*/)?`` that has begun.
    Tokens: a literal character, ``[^/]`` (one), ``[^/]*`` (star), ``.*`` (any),
    ``(.*/)?`` (dirs) and a character class, read as filepath.Match reads it.
    """

    def __init__(self, tokens: list[_Token]) -> None:
        self.one = self.star = self.any = self.dirs = self.skip = 0
        self.literal: dict[str, int] = {}
        self.classes: list[tuple[int, bool, list[tuple[str, str]]]] = []
        for position, (kind, value) in enumerate(tokens):
            bit = 1 << position
            if kind == _LITERAL:
                assert isinstance(value, str)
                self.literal[value] = self.literal.get(value, 0) | bit
            elif kind == _ONE:
                self.one |= bit
            elif kind == _CLASS:
                assert isinstance(value, tuple)
                negated, ranges = value
                self.classes.append((bit, negated, ranges))
            else:
                self.skip |= bit  # star, any and dirs may match nothing
                if kind == _STAR:
                    self.star |= bit
                elif kind == _ANY:
                    self.any |= bit
                else:
                    self.dirs |= bit
        self.accept = 1 << len(tokens)
        self._advancing: dict[str, int] = {}

    def _close(self, state: int) -> int:
        while True:
            more = state | ((state & self.skip) << 1)
            if more == state:
                return state
            state = more

    def _advances_on(self, ch: str) -> int:
        """The positions whose token consumes `ch` and moves on (cached per character)."""
        mask = self._advancing.get(ch)
        if mask is None:
            mask = self.literal.get(ch, 0) | (self.one if ch != "/" else 0)
            for bit, negated, ranges in self.classes:
                if any(lo <= ch <= hi for lo, hi in ranges) != negated:
                    mask |= bit
            self._advancing[ch] = mask
        return mask

    def matches(self, path: str) -> bool:
        state, inside = self._close(1), 0
        for ch in path:
            entering = (state & self.dirs) | inside  # in a (.*/)? after this character, unless it is a newline
            moved = (state & self._advances_on(ch)) << 1
            if ch == "/":
                moved |= entering << 1
            else:
                moved |= state & self.star
            if ch == "\n":
                inside = 0
            else:
                moved |= state & self.any
                inside = entering
            state = self._close(moved)
            if not state and not inside:
                return False
        return bool(state & self.accept)


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern; `exclusion` is True for a ``!`` exception."""

    text: str
    exclusion: bool
    kind: _Kind
    automaton: _PathAutomaton | None

    def match(self, path: str) -> bool:
        if self.kind is _Kind.EXACT:
            return path == self.text
        if self.kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.automaton is not None
        return self.automaton.matches(path)


def _compile(text: str, exclusion: bool) -> Pattern:
    """Translate like patternmatcher's Pattern.compile: some patterns need no regular expression at all.

    Where patternmatcher writes a regular expression (``[^/]*`` for ``*``, ``(.*/)?``
    for ``**/``, ...), this makes the same expression's tokens for `_PathAutomaton`.
    A character class is read as filepath.Match reads it (patternmatcher copies
    its text into the expression, where a ``*`` in it would mean something else),
    and an escaped character is that character.
    """
    tokens: list[_Token] = []
    kind = _Kind.EXACT
    i = 0
    n = len(text)
    first = True
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*" and i < n and text[i] == "*":
            i += 1
            if i < n and text[i] == "/":
                i += 1  # '**/' is the same as '**'
            if i >= n:
                if kind is _Kind.EXACT:
                    kind = _Kind.PREFIX
                else:
                    tokens.append((_ANY, None))
                    kind = _Kind.REGEXP
            else:
                tokens.append((_DIRS, None))
                kind = _Kind.REGEXP
            if first:
                kind = _Kind.SUFFIX
        elif ch == "*":
            tokens.append((_STAR, None))
            kind = _Kind.REGEXP
        elif ch == "?":
            tokens.append((_ONE, None))
            kind = _Kind.REGEXP
        elif ch == "\\":
            tokens.append((_LITERAL, text[i] if i < n else "\\"))
            if i < n:
                i += 1
                kind = _Kind.REGEXP
        elif ch == "[":
            negated, ranges, i = class_at(text, i)  # the pattern was validated: the class is well formed
            tokens.append((_CLASS, (negated, ranges)))
            kind = _Kind.REGEXP
        else:
            tokens.append((_LITERAL, ch))
            if ch == "]":
                kind = _Kind.REGEXP
        first = False
    return Pattern(text, exclusion, kind, _PathAutomaton(tokens) if kind is _Kind.REGEXP else None)


class IgnoreMatcher:
    """Decides whether a context path is excluded, as docker's MatchesOrParentMatches."""

    def __init__(self, patterns: list[str], *, source: str = ".dockerignore") -> None:
        self.source = source
        self.patterns: list[Pattern] = []
        for raw in patterns:
            text = raw.strip()
            if not text:
                continue
            text = go_clean(text)
            exclusion = text.startswith("!")
            if exclusion:
                if len(text) == 1:
                    raise DockerfileError('illegal exclusion pattern: "!"', file=source)
                text = text[1:]
            try:
                validate_pattern(text)
            except BadPatternError as exc:
                raise DockerfileError(str(exc), file=source) from None
            self.patterns.append(_compile(text, exclusion))

    @property
    def has_exclusions(self) -> bool:
        """True when some ``!`` pattern may re-include excluded paths."""
        return any(p.exclusion for p in self.patterns)

    def matches(self, relpath: str) -> bool:
        """True when `relpath` (relative to the context, '/'-separated) is excluded."""
        path = go_clean(relpath.lstrip("/"))
        if path in (".", "/", ""):
            return False
        parents = posixpath.dirname(path).split("/") if "/" in path else []
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue  # only an exception can undo a match, only an inclusion can make one
            hit = pattern.match(path)
            if not hit:
                hit = any(pattern.match("/".join(parents[: i + 1])) for i in range(len(parents)))
            if hit:
                matched = not pattern.exclusion
        return matched

    def may_reinclude_under(self, reldir: str) -> bool:
        """Whether some exception could re-include a path under the excluded directory `reldir`.

        When False a walker may skip the whole directory. The answer errs on the
        side of True: ``**`` in an exception, or an exception naming the directory
        or a descendant or ancestor of it, keeps the walk going.
        """
        parts = [p for p in go_clean(reldir.strip("/")).split("/") if p not in ("", ".")]
        for pattern in self.patterns:
            if pattern.exclusion and _could_touch(pattern.text.split("/"), parts):
                return True
        return False


def _could_touch(pattern_parts: list[str], dir_parts: list[str]) -> bool:
    for pat, part in zip(pattern_parts, dir_parts):
        if "**" in pat:
            return True
        try:
            if not match_path(pat, part):
                return False
        except BadPatternError:
            return True
    return True


def load_ignore(context_dir: str | Path, dockerfile_path: str | Path | None = None) -> IgnoreMatcher:
    """The ignore rules for a build: ``<Dockerfile>.dockerignore`` if present, else ``.dockerignore``."""
    candidates = []
    if dockerfile_path is not None:
        dockerfile = Path(dockerfile_path)
        candidates.append(dockerfile.with_name(dockerfile.name + ".dockerignore"))
    candidates.append(Path(context_dir) / ".dockerignore")
    for candidate in candidates:
        found = context_file(context_dir, candidate, what=candidate.name)  # never a link out of the context
        if found is not None:
            text = found.read_text(encoding="utf-8", errors="surrogateescape")
            return IgnoreMatcher(read_patterns(text), source=str(candidate))
    return IgnoreMatcher([], source="")
