"""Fuzzing .dockerignore and COPY wildcards: every pattern is a match, a non-match or a one-line error, quickly.

The .dockerignore matcher (builder/context/dockerignore.py) is checked against the
regular expression moby/patternmatcher builds from a pattern, run by Python's
`re` on inputs small enough for its backtracking, then on patterns that made
`re` run for hours; COPY's wildcards (builder/frontend/globmatch.py) on patterns long
enough to expose quadratic work.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator

import pytest
from fuzz_support import OfflineBuild, assert_error_contract, fuzz_settings, outcome, time_limit
from hypothesis import assume, example, given
from hypothesis import strategies as st

from builder.context.dockerignore import IgnoreMatcher, read_patterns
from builder.frontend.globmatch import BadPatternError, match_path, validate_pattern
from oci.errors import DockerfileError, WharfieError


def patternmatcher_regex(text: str) -> re.Pattern[str] | None:
    """moby/patternmatcher's Pattern.compile, as a Python regular expression (None: no expression needed)."""
    regex, exact, i, n = "^", True, 0, len(text)
    while i < n:
        ch = text[i]
        i += 1
        if ch == "*" and i < n and text[i] == "*":
            i += 1
            if i < n and text[i] == "/":
                i += 1
            regex += ".*" if i >= n else "(.*/)?"
            exact = exact and i >= n
        elif ch == "*":
            regex, exact = regex + "[^/]*", False
        elif ch == "?":
            regex, exact = regex + "[^/]", False
        elif ch in ".+()|{}$":
            regex += "\\" + ch
        elif ch == "\\":
            regex += ("\\" + text[i]) if i < n else "\\\\"
            exact, i = exact and i >= n, i + 1
        else:
            regex += ch
            exact = exact and ch not in "[]"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return re.compile(regex + r"\Z")


def comparable(text: str) -> bool:
    """Patterns whose regular expression means what the pattern says (see dockerignore._compile)."""
    in_class = False
    for i, ch in enumerate(text):
        if ch == "[":
            in_class = True
        elif ch == "]":
            in_class = False
        elif (in_class and ch in "*?\\") or (ch == "\\" and text[i + 1 : i + 2].isalnum()):
            return False
    return True


SEGMENTS = st.lists(st.sampled_from(["a", "b", "ab", "*", "**", "?", ".", "[ab]", "[^a]", "[a-c]", "\\*", "c.d"]),
                    min_size=1, max_size=4).map("".join)
PATTERNS = st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join)
PATHS = st.lists(st.text("ab.cd*", min_size=1, max_size=4), min_size=1, max_size=5).map("/".join)


@fuzz_settings(300)
@given(PATTERNS, PATHS)
@example("**/**/a", "b/b/a")
@example("a/**", "a/b/c")
@example("**", "x")
def test_matches_like_patternmatcher(pattern: str, path: str) -> None:
    try:
        matcher = IgnoreMatcher([pattern])
    except DockerfileError:
        with pytest.raises(BadPatternError):
            validate_pattern(pattern.lstrip("!"))
        return
    assume(comparable(matcher.patterns[0].text))
    compiled = matcher.patterns[0]
    oracle = patternmatcher_regex(compiled.text)
    if compiled.automaton is not None:
        assert compiled.match(path) == bool(oracle.match(path)), (compiled.text, path)


@pytest.mark.parametrize("pattern", ["**/" * 12 + "x", "a*" * 30 + "b", "**/a/" * 10 + "x", "*?" * 40 + "z"],
                         ids=["dirs", "stars", "dirs-and-names", "stars-and-ones"])
def test_patterns_that_made_re_backtrack_for_hours(pattern: str) -> None:
    matcher = IgnoreMatcher([pattern])
    deep = "/".join(["a"] * 60) + "/y"
    with time_limit(5, pattern):
        assert not matcher.matches(deep)
        assert not matcher.matches("a" * 250)


@fuzz_settings(300)
@given(st.binary(max_size=200).map(lambda b: b.decode("utf-8", "surrogateescape")), st.lists(PATHS, max_size=3))
@example("\\q\n[z-a]\n", ["q"])  # unknown escapes and reversed ranges crashed re.compile
@example("!\n", [])
def test_any_dockerignore_is_rules_or_one_line_error(text: str, paths: list[str]) -> None:
    with time_limit(5, "a .dockerignore"):
        try:
            matcher = IgnoreMatcher(read_patterns(text), source=".dockerignore")
        except DockerfileError as exc:
            assert_error_contract(exc, filename=".dockerignore")
            outcome("error")
            return
        for path in paths:
            matcher.matches(path)
            matcher.may_reinclude_under(path)
        outcome("rules")


@fuzz_settings(300)
@given(st.text(st.sampled_from("ab*?[]^-\\/"), max_size=30), st.text(st.sampled_from("ab*?[]^-\\/"), max_size=12))
def test_copy_wildcards_match_or_are_bad_patterns(pattern: str, name: str) -> None:
    try:
        match_path(pattern, name)
    except BadPatternError as exc:
        assert "\n" not in str(exc).replace(repr(pattern), "")


@pytest.mark.parametrize("pattern", ["a" * 1_000_000 + "*", "*a" * 500_000, "[a]" * 300_000 + "*"],
                         ids=["literal", "stars", "classes"])
def test_long_copy_wildcards_take_linear_time(pattern: str) -> None:
    """Found by probing: each character sliced the rest of the pattern; 100,000 characters took minutes."""
    with time_limit(10, "a long pattern"):
        validate_pattern(pattern)
        match_path(pattern, "a" * 200)


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineBuild]:
    build = OfflineBuild(tmp_path_factory.mktemp("ignore-build"))
    with build.offline():
        yield build


@fuzz_settings(20)
@given(st.lists(st.one_of(PATTERNS, st.sampled_from(["!a.txt", "!", "dir", "*.txt", "\\q", "[z-a]", "#c", " "])),
                max_size=5).map("\n".join))
def test_builds_honour_any_dockerignore(offline: OfflineBuild, ignore: str) -> None:
    try:
        with time_limit(10, "a build"):
            offline.build(b"FROM busybox\nCOPY . /ctx/\n", ignore=ignore.encode())
    except WharfieError as exc:
        assert_error_contract(exc, filename=str(offline.ignore_file))
        outcome("error")
        return
    outcome("built")
