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
import re
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from builder.context.files import context_file
from builder.frontend.globmatch import BadPatternError, match_path, validate_pattern
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


@dataclass(frozen=True)
class Pattern:
    """One compiled pattern; `exclusion` is True for a ``!`` exception."""

    text: str
    exclusion: bool
    kind: _Kind
    regexp: re.Pattern[str] | None

    def match(self, path: str) -> bool:
        if self.kind is _Kind.EXACT:
            return path == self.text
        if self.kind is _Kind.PREFIX:
            return path.startswith(self.text[:-2])
        if self.kind is _Kind.SUFFIX:
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regexp is not None
        return self.regexp.match(path) is not None


_REGEX_SPECIAL = set(".+()|{}$")


def _compile(text: str, exclusion: bool) -> Pattern:
    """Translate like patternmatcher's Pattern.compile: some patterns need no regexp at all."""
    regex = "^"
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
                    regex += ".*"
                    kind = _Kind.REGEXP
            else:
                regex += "(.*/)?"
                kind = _Kind.REGEXP
            if first:
                kind = _Kind.SUFFIX
        elif ch == "*":
            regex += "[^/]*"
            kind = _Kind.REGEXP
        elif ch == "?":
            regex += "[^/]"
            kind = _Kind.REGEXP
        elif ch in _REGEX_SPECIAL:
            regex += "\\" + ch
        elif ch == "\\":
            if i < n:
                regex += "\\" + text[i]
                i += 1
                kind = _Kind.REGEXP
            else:
                regex += "\\\\"
        else:
            regex += ch  # '[' and ']' pass through as a regexp class, as in Go
            if ch in "[]":
                kind = _Kind.REGEXP
        first = False
    compiled = None
    if kind is _Kind.REGEXP:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            compiled = re.compile(regex + r"\Z")
    return Pattern(text, exclusion, kind, compiled)


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
