"""The patterns of ``${VAR#pattern}``, ``${VAR%pattern}`` and ``${VAR/pattern/string}``, matched in linear time.

Why not `re`: BuildKit turns such a pattern into a Go regular expression, and
Go's engine runs in time linear in the input; Python's backtracks, so
``${A#*a*a*a*a*b}`` against a few thousand characters ran for hours. A pattern
has three kinds of token: ``*`` (any run of characters), ``?`` (one character;
neither crosses a newline, like ``.`` in Go) and any other character (itself,
``\\*``, ``\\?`` and ``\\\\`` escaping the three; ``\\}`` and ``\\/`` are the
delimiters of ``${}``). That is a regular language simple enough for a
bit-parallel automaton: one bit per position in the pattern, one pass over the
value, whatever the pattern.

Matches are those of BuildKit's regular expressions: a shortest or longest
prefix (``#``, ``##``), a suffix by the same search over the reversed value and
pattern (``%``, ``%%``), and for ``/`` the leftmost match, as long as it goes,
replaced once or, with ``//``, as Go's ReplaceAllString does (an empty match
right after a match is skipped).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence

__all__ = ["PatternError", "replace", "trim_prefix", "trim_suffix"]

_STAR, _ONE, _CHAR = "*", "?", "c"
_Token = tuple[str, str]  # (kind, the character for _CHAR)


class PatternError(ValueError):
    """The pattern holds an escape BuildKit refuses."""


def _tokens(pattern: str) -> list[_Token]:
    """The pattern's tokens, consecutive stars merged (they match what one star does)."""
    tokens: list[_Token] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        i += 1
        if ch == "*":
            if not tokens or tokens[-1][0] != _STAR:
                tokens.append((_STAR, ""))
        elif ch == "?":
            tokens.append((_ONE, ""))
        elif ch == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue  # the escape protected a delimiter of ${}; it is not part of the pattern
            if nxt not in ("*", "?", "\\"):
                raise PatternError(f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'")
            tokens.append((_CHAR, nxt))
            i += 1
        else:
            tokens.append((_CHAR, ch))
    return tokens


class _Automaton:
    """A set of pattern positions as the bits of an int: bit j set means the first j tokens have matched."""

    def __init__(self, tokens: Sequence[_Token]) -> None:
        self.star = self.one = 0
        self.chars: dict[str, int] = {}
        for position, (kind, ch) in enumerate(tokens):
            bit = 1 << position
            if kind == _STAR:
                self.star |= bit
            elif kind == _ONE:
                self.one |= bit
            else:
                self.chars[ch] = self.chars.get(ch, 0) | bit
        self.accept = 1 << len(tokens)
        self.start = self._close(1)

    def _close(self, state: int) -> int:
        return state | ((state & self.star) << 1)  # a star may match nothing (stars are never adjacent)

    def step(self, state: int, ch: str) -> int:
        same = self.chars.get(ch, 0)
        if ch == "\n":
            return self._close((state & same) << 1)
        return self._close((state & self.star) | ((state & (self.one | same)) << 1))

    def ends(self, value: str, start: int = 0) -> Iterator[int]:
        """Every `end` (ascending) for which ``value[start:end]`` matches the whole pattern."""
        state = self.start
        for index in range(start, len(value)):
            if state & self.accept:
                yield index
            state = self.step(state, value[index])
            if not state:
                return
        if state & self.accept:
            yield len(value)


def _prefix_end(tokens: Sequence[_Token], value: str, longest: bool) -> int | None:
    end = None
    for end in _Automaton(tokens).ends(value):
        if not longest:
            return end
    return end


def trim_prefix(pattern: str, value: str, *, longest: bool) -> str:
    """``${VAR#pattern}`` (shortest) and ``${VAR##pattern}`` (longest)."""
    end = _prefix_end(_tokens(pattern), value, longest)
    return value if end is None else value[end:]


def trim_suffix(pattern: str, value: str, *, longest: bool) -> str:
    """``${VAR%pattern}`` and ``${VAR%%pattern}``: a prefix of the reversed value, as BuildKit finds it."""
    end = _prefix_end(_tokens(pattern)[::-1], value[::-1], longest)
    return value if end is None else value[: len(value) - end]


def _match_starts(tokens: Sequence[_Token], value: str) -> list[int]:
    """Every position where some match begins: one pass of the reversed pattern over the reversed value."""
    automaton = _Automaton(tokens[::-1])
    starts = []
    state = 0
    size = len(value)
    for consumed in range(size + 1):
        state |= automaton.start  # a match may end (in the value's order) at size - consumed
        if state & automaton.accept:
            starts.append(size - consumed)
        if consumed < size:
            state = automaton.step(state, value[size - 1 - consumed])
    return starts[::-1]


def replace(pattern: str, value: str, replacement: str, *, every: bool) -> str:
    """``${VAR/pattern/string}`` (the leftmost match) and ``${VAR//pattern/string}`` (every match)."""
    tokens = _tokens(pattern)
    starts = _match_starts(tokens, value)
    forward = _Automaton(tokens)

    def match_at_or_after(position: int) -> tuple[int, int] | None:
        at = bisect.bisect_left(starts, position)
        if at == len(starts):
            return None
        start = starts[at]
        return start, max(forward.ends(value, start))

    if not every:
        found = match_at_or_after(0)
        return value if found is None else value[: found[0]] + replacement + value[found[1] :]
    out: list[str] = []
    last_end = search = 0
    while search <= len(value):  # Go's regexp.ReplaceAllString
        found = match_at_or_after(search)
        if found is None:
            break
        start, end = found
        out.append(value[last_end:start])
        if end > last_end or start == 0:
            out.append(replacement)  # not for an empty match right after another match
        last_end = end
        search = max(end, search + 1)
    out.append(value[last_end:])
    return "".join(out)
