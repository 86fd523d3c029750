"""Go's ``path/filepath.Match`` for COPY/ADD wildcards and .dockerignore syntax checks.

Why: docker resolves ``COPY *.txt /dst`` and validates .dockerignore patterns
with Go's filepath.Match, whose rules differ from Python's fnmatch: ``*`` and
``?`` never cross '/', classes negate with ``^`` (``[!x]`` is a class holding
'!'), a backslash escapes the next character, and a malformed pattern is an
error rather than a literal. This is a port of that algorithm.
"""

from __future__ import annotations

__all__ = ["BadPatternError", "has_wildcards", "match_path", "validate_pattern"]

_SEP = "/"


class BadPatternError(ValueError):
    """The pattern is malformed (Go's filepath.ErrBadPattern)."""

    def __init__(self, pattern: str = "") -> None:
        super().__init__(f"syntax error in pattern: {pattern!r}" if pattern else "syntax error in pattern")


def has_wildcards(path: str) -> bool:
    """True when `path` contains an unescaped ``*``, ``?`` or ``[`` (BuildKit's containsWildcards)."""
    i = 0
    while i < len(path):
        if path[i] == "\\":
            i += 2
            continue
        if path[i] in "*?[":
            return True
        i += 1
    return False


def match_path(pattern: str, name: str) -> bool:
    """Whether `name` matches the shell `pattern`, exactly as Go's filepath.Match.

    Raises BadPatternError for a malformed pattern.
    """
    try:
        return _match(pattern, name)
    except BadPatternError:
        raise BadPatternError(pattern) from None


def validate_pattern(pattern: str) -> None:
    """Raise BadPatternError when `pattern` is malformed (as docker checks .dockerignore lines)."""
    match_path(pattern, ".")


def _match(pattern: str, name: str) -> bool:
    while pattern:
        star, chunk, pattern = _scan_chunk(pattern)
        if star and not chunk:
            return _SEP not in name  # a trailing * matches the rest unless it holds a '/'
        rest, ok = _match_chunk(chunk, name)
        if ok and (not rest or pattern):
            name = rest
            continue
        if star:
            found = False
            i = 0
            while i < len(name) and name[i] != _SEP:
                rest, ok = _match_chunk(chunk, name[i + 1 :])
                i += 1
                if ok:
                    if not pattern and rest:
                        continue  # the last chunk must consume the whole name
                    name, found = rest, True
                    break
            if found:
                continue
        while pattern:  # report a malformed remainder even though the match failed
            _, chunk, pattern = _scan_chunk(pattern)
            _match_chunk(chunk, "")
        return False
    return not name


def _scan_chunk(pattern: str) -> tuple[bool, str, str]:
    star = False
    while pattern.startswith("*"):
        pattern = pattern[1:]
        star = True
    in_range = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            if i + 1 < len(pattern):
                i += 1
        elif ch == "[":
            in_range = True
        elif ch == "]":
            in_range = False
        elif ch == "*" and not in_range:
            break
        i += 1
    return star, pattern[:i], pattern[i:]


def _match_chunk(chunk: str, s: str) -> tuple[str, bool]:
    """Match `chunk` (no '*') at the start of `s`; return (rest, ok). Validates the whole chunk."""
    failed = False
    while chunk:
        if not failed and not s:
            failed = True
        head = chunk[0]
        if head == "[":
            r = ""
            if not failed:
                r, s = s[0], s[1:]
            chunk, matched, negated = _match_class(chunk[1:], r)
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[0] == _SEP:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
        else:
            if head == "\\":
                chunk = chunk[1:]
                if not chunk:
                    raise BadPatternError()
            if not failed:
                if chunk[0] != s[0]:
                    failed = True
                s = s[1:]
            chunk = chunk[1:]
    return ("", False) if failed else (s, True)


def _match_class(chunk: str, r: str) -> tuple[str, bool, bool]:
    """Parse a character class after its '['; return (rest of chunk, r in class, negated)."""
    negated = chunk.startswith("^")
    if negated:
        chunk = chunk[1:]
    matched = False
    count = 0
    while True:
        if chunk.startswith("]") and count > 0:
            return chunk[1:], matched, negated
        lo, chunk = _get_esc(chunk)
        hi = lo
        if chunk[0] == "-":
            hi, chunk = _get_esc(chunk[1:])
        if r and lo <= r <= hi:
            matched = True
        count += 1


def _get_esc(chunk: str) -> tuple[str, str]:
    if not chunk or chunk[0] in "-]":
        raise BadPatternError()
    if chunk[0] == "\\":
        chunk = chunk[1:]
        if not chunk:
            raise BadPatternError()
    rest = chunk[1:]
    if not rest:
        raise BadPatternError()
    return chunk[0], rest
