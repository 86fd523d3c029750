"""Go's ``path/filepath.Match`` for COPY/ADD wildcards and .dockerignore syntax checks.

Why: docker resolves ``COPY *.txt /dst`` and validates .dockerignore patterns
with Go's filepath.Match, whose rules differ from Python's fnmatch: ``*`` and
``?`` never cross '/', classes negate with ``^`` (``[!x]`` is a class holding
'!'), a backslash escapes the next character, and a malformed pattern is an
error rather than a literal. This is a port of that algorithm.
"""

from __future__ import annotations

__all__ = ["BadPatternError", "class_at", "has_wildcards", "match_path", "validate_pattern"]

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
    # Positions, not slices: slicing the rest of the pattern at every character made a long pattern
    # quadratic (a COPY source of 100,000 characters took minutes per file it was tried on).
    at = 0  # in the pattern
    pos = 0  # in the name
    while at < len(pattern):
        star, begin, at = _scan_chunk(pattern, at)
        if star and begin == at:
            return _SEP not in name[pos:]  # a trailing * matches the rest unless it holds a '/'
        end, ok = _match_chunk(pattern, begin, at, name, pos)
        if ok and (end == len(name) or at < len(pattern)):
            pos = end
            continue
        if star:
            found = False
            i = pos
            while i < len(name) and name[i] != _SEP:
                end, ok = _match_chunk(pattern, begin, at, name, i + 1)
                i += 1
                if ok:
                    if at == len(pattern) and end < len(name):
                        continue  # the last chunk must consume the whole name
                    pos, found = end, True
                    break
            if found:
                continue
        while at < len(pattern):  # report a malformed remainder even though the match failed
            _, begin, at = _scan_chunk(pattern, at)
            _match_chunk(pattern, begin, at, "", 0)
        return False
    return pos == len(name)


def _scan_chunk(pattern: str, at: int) -> tuple[bool, int, int]:
    """Leading stars, then the chunk up to the next unbracketed '*': (star, chunk start, chunk end)."""
    star = False
    while at < len(pattern) and pattern[at] == "*":
        at += 1
        star = True
    in_range = False
    i = at
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
    return star, at, i


def _match_chunk(pattern: str, at: int, end: int, s: str, pos: int) -> tuple[int, bool]:
    """Match ``pattern[at:end]`` (no '*') at ``s[pos:]``; return (position after it, ok). Validates the whole chunk."""
    failed = False
    while at < end:
        if not failed and pos >= len(s):
            failed = True
        head = pattern[at]
        if head == "[":
            r = ""
            if not failed:
                r = s[pos]
                pos += 1
            negated, ranges, at = class_at(pattern, at + 1, end)
            matched = bool(r) and any(lo <= r <= hi for lo, hi in ranges)
            if matched == negated:
                failed = True
        elif head == "?":
            if not failed:
                if s[pos] == _SEP:
                    failed = True
                pos += 1
            at += 1
        else:
            if head == "\\":
                at += 1
                if at >= end:
                    raise BadPatternError()
            if not failed:
                if pattern[at] != s[pos]:
                    failed = True
                pos += 1
            at += 1
    return (0, False) if failed else (pos, True)


def class_at(pattern: str, at: int, end: int | None = None) -> tuple[bool, list[tuple[str, str]], int]:
    """The character class whose '[' is just before `at`: (negated, its ranges, the position after its ']').

    Raises BadPatternError when it is malformed or does not close before `end`.
    """
    end = len(pattern) if end is None else end
    negated = at < end and pattern[at] == "^"
    if negated:
        at += 1
    ranges: list[tuple[str, str]] = []
    while True:
        if at < end and pattern[at] == "]" and ranges:
            return negated, ranges, at + 1
        lo, at = _get_esc(pattern, at, end)
        hi = lo
        if pattern[at] == "-":
            hi, at = _get_esc(pattern, at + 1, end)
        ranges.append((lo, hi))


def _get_esc(pattern: str, at: int, end: int) -> tuple[str, int]:
    if at >= end or pattern[at] in "-]":
        raise BadPatternError()
    if pattern[at] == "\\":
        at += 1
        if at >= end:
            raise BadPatternError()
    if at + 1 >= end:
        raise BadPatternError()
    return pattern[at], at + 1
