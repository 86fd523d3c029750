"""Fuzzing variable expansion: `${VAR#pattern}` and friends in linear time, the lexer's limits, every input.

The pattern matcher (builder/frontend/shell_pattern.py) is checked against the regular
expressions BuildKit builds from a pattern, run by Python's `re` on inputs small
enough for its backtracking; then on inputs that made `re` run for hours.
"""

from __future__ import annotations

import re

import pytest
from fuzz_support import fuzz_settings, time_limit
from hypothesis import example, given
from hypothesis import strategies as st

from builder.frontend import shell_pattern
from builder.frontend.limits import MAX_EXPANDED_LENGTH, MAX_EXPANSION_DEPTH
from builder.frontend.shell import ExpansionError, Lexer


def buildkit_regex(pattern: str, *, greedy: bool, anchored: bool) -> re.Pattern[str]:
    """BuildKit's convertShellPatternToRegex (frontend/dockerfile/shell/lex.go), in Python: the oracle."""
    out = "^" if anchored else ""
    i = 0
    while i < len(pattern):
        tok = pattern[i]
        i += 1
        if tok == "*":
            out += ".*" if greedy else ".*?"
        elif tok == "?":
            out += "."
        elif tok == "\\":
            nxt = pattern[i] if i < len(pattern) else ""
            if nxt in ("}", "/"):
                continue
            if nxt not in ("*", "?", "\\"):
                raise shell_pattern.PatternError(nxt)
            out += "\\" + nxt
            i += 1
        else:
            out += re.escape(tok)
    return re.compile(out)


def reverse_pattern(pattern: str) -> str:
    """BuildKit's reversePattern: escape pairs keep their order."""
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(reversed(out))


def oracle_trim_prefix(pattern: str, value: str, longest: bool) -> str:
    match = buildkit_regex(pattern, greedy=longest, anchored=True).search(value)
    return value[match.end() :] if match else value


def oracle_replace_all(pattern: str, value: str, replacement: str) -> str:
    """Go's regexp.ReplaceAllString with a literal replacement."""
    regex = buildkit_regex(pattern, greedy=True, anchored=False)
    out, last_end, search = [], 0, 0
    while search <= len(value):
        match = regex.search(value, search)
        if match is None:
            break
        out.append(value[last_end : match.start()])
        if match.end() > last_end or match.start() == 0:
            out.append(replacement)
        last_end = match.end()
        search = max(match.end(), search + 1)
    out.append(value[last_end:])
    return "".join(out)


PATTERNS = st.text(st.sampled_from("ab*?\\\n/}"), max_size=7)
VALUES = st.text(st.sampled_from("ab*?\\\nc"), max_size=12)


@fuzz_settings(400)
@given(PATTERNS, VALUES, st.booleans())
@example("*a*b", "aabab", True)
@example("*", "ab\nab", True)
@example("\\", "a", False)
def test_trims_match_buildkit_regexes(pattern: str, value: str, longest: bool) -> None:
    try:
        expected_prefix = oracle_trim_prefix(pattern, value, longest)
        expected_suffix = oracle_trim_prefix(reverse_pattern(pattern), value[::-1], longest)[::-1]
    except shell_pattern.PatternError:
        with pytest.raises(shell_pattern.PatternError):
            shell_pattern.trim_prefix(pattern, value, longest=longest)
        return
    assert shell_pattern.trim_prefix(pattern, value, longest=longest) == expected_prefix
    assert shell_pattern.trim_suffix(pattern, value, longest=longest) == expected_suffix


@fuzz_settings(400)
@given(PATTERNS, VALUES, st.sampled_from(["", "R", "$1"]))
@example("*", "ab", "x")
@example("", "ab", "x")
@example("a*", "aa\nab", "x")
def test_replacements_match_buildkit_regexes(pattern: str, value: str, replacement: str) -> None:
    try:
        regex = buildkit_regex(pattern, greedy=True, anchored=False)
    except shell_pattern.PatternError:
        with pytest.raises(shell_pattern.PatternError):
            shell_pattern.replace(pattern, value, replacement, every=False)
        return
    once = regex.sub(lambda _m: replacement, value, count=1)
    assert shell_pattern.replace(pattern, value, replacement, every=False) == once
    assert shell_pattern.replace(pattern, value, replacement, every=True) == oracle_replace_all(pattern, value,
                                                                                                 replacement)


@pytest.mark.parametrize("expression", ["${A#*a*a*a*a*a*b}", "${A##*a*a*a*a*a*b}", "${A%*a*a*a*a*a*b}",
                                        "${A%%b*a*a*a*a*a*}", "${A/*a*a*a*a*a*b/x}", "${A//a*a*a*a*a*b/x}",
                                        "${A//?*?*?*?*c/x}"])
def test_patterns_that_made_re_backtrack_for_hours(expression: str) -> None:
    """Found by the fuzzer: Python's backtracking took hours where Go's engine is linear."""
    value = "a" * 100_000
    with time_limit(5, expression):
        assert Lexer().process_word(expression, {"A": value}) == value


# -- the lexer as a whole -------------------------------------------------------------

EXPRESSIONS = st.lists(st.sampled_from(["$", "{", "}", "A", "B", ":", "-", "+", "?", "#", "%", "/", "*", "\\", "'",
                                        '"', "`", "x", " ", "\t", "\n", "${A", "${B:-", "}}"]), max_size=30).map("".join)


@fuzz_settings(200)
@example("${A\n", "\\", {})  # the message held the newline
@given(EXPRESSIONS, st.sampled_from(["\\", "`"]), st.dictionaries(st.sampled_from(["A", "B", "C"]),
                                                                  st.text(max_size=8), max_size=3))
def test_any_expression_expands_or_is_an_expansion_error(expression: str, escape: str, env: dict[str, str]) -> None:
    for lexer in (Lexer(escape), Lexer(escape, raw_quotes=True, raw_escapes=True, skip_unset=True, heredoc_words=True),
                  Lexer(escape, skip_process_quotes=True)):
        try:
            with time_limit(5, expression):
                result = lexer.process(expression, env)
        except ExpansionError as exc:
            assert "\n" not in str(exc).replace(repr(expression), "")
            continue
        assert isinstance(result.text, str)


def test_expansion_depth_is_limited() -> None:
    limit = MAX_EXPANSION_DEPTH.value
    fine = "${A:-" * limit + "x" + "}" * limit
    assert Lexer().process_word(fine, {}) == "x"
    for deep in ("${A:-" * 5000 + "x" + "}" * 5000, '"${A:-' * 5000 + "x" + '}"' * 5000):
        with pytest.raises(ExpansionError, match=MAX_EXPANSION_DEPTH.name):
            Lexer().process_word(deep, {})


def test_expanded_length_is_limited() -> None:
    """A variable that doubles at every step stops at the limit, quickly."""
    value = "ab"
    with time_limit(10, "doubling"), pytest.raises(ExpansionError, match=MAX_EXPANDED_LENGTH.name):
        for _ in range(64):
            value = Lexer().process_word("$A$A", {"A": value})
    assert len(value) <= 2 * MAX_EXPANDED_LENGTH.value
    many = "$A" * 1000
    with time_limit(10, "many references"), pytest.raises(ExpansionError, match=MAX_EXPANDED_LENGTH.name):
        Lexer().process_word(many, {"A": "x" * (MAX_EXPANDED_LENGTH.value // 2)})
    written = "x" * (MAX_EXPANDED_LENGTH.value + 10)  # a long word that does not grow is fine
    assert Lexer().process_word(written, {}) == written
