""".dockerignore semantics (moby/patternmatcher, ignorefile) and Go's filepath.Match for COPY wildcards."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.context.dockerignore import IgnoreMatcher, go_clean, load_ignore, read_patterns
from builder.frontend.globmatch import BadPatternError, has_wildcards, match_path
from oci.errors import DockerfileError

# Go's filepath.Match tests (also used by moby/patternmatcher). None: ErrBadPattern.
MATCH_CASES = [
    ("abc", "abc", True),
    ("*", "abc", True),
    ("*c", "abc", True),
    ("a*", "a", True),
    ("a*", "abc", True),
    ("a*", "ab/c", False),
    ("a*/b", "abc/b", True),
    ("a*/b", "a/c/b", False),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", True),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", False),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", False),
    ("a*b?c*x", "abxbbxdbxebxczzx", True),
    ("a*b?c*x", "abxbbxdbxebxczzy", False),
    ("ab[c]", "abc", True),
    ("ab[b-d]", "abc", True),
    ("ab[e-g]", "abc", False),
    ("ab[^c]", "abc", False),
    ("ab[^b-d]", "abc", False),
    ("ab[^e-g]", "abc", True),
    ("ab[!c]", "ab!", True),  # Go negates with ^ only
    ("a\\*b", "a*b", True),
    ("a\\*b", "ab", False),
    ("a?b", "a☺b", True),
    ("a[^a]b", "a☺b", True),
    ("a???b", "a☺b", False),
    ("a[^a][^a][^a]b", "a☺b", False),
    ("[a-ζ]*", "α", True),
    ("*[a-ζ]", "A", False),
    ("a?b", "a/b", False),
    ("a*b", "a/b", False),
    ("[\\]a]", "]", True),
    ("[\\-]", "-", True),
    ("[x\\-]", "x", True),
    ("[x\\-]", "-", True),
    ("[x\\-]", "z", False),
    ("[\\-x]", "x", True),
    ("[\\-x]", "-", True),
    ("[\\-x]", "a", False),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[x-]", "-", None),
    ("[x-]", "z", None),
    ("[-x]", "x", None),
    ("[-x]", "-", None),
    ("[-x]", "a", None),
    ("\\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("a[", "x", None),
    ("a/b[", "x", None),
    ("*x", "xxx", True),
]


@pytest.mark.parametrize(("pattern", "name", "expected"), MATCH_CASES)
def test_match_path(pattern: str, name: str, expected: bool | None) -> None:
    if expected is None:
        with pytest.raises(BadPatternError):
            match_path(pattern, name)
    else:
        assert match_path(pattern, name) is expected


@pytest.mark.parametrize(("path", "expected"), [("a/*.txt", True), ("a/b", False), ("a\\*b", False), ("f[0]", True)])
def test_has_wildcards(path: str, expected: bool) -> None:
    assert has_wildcards(path) is expected


def test_read_patterns() -> None:
    text = "\ufeff# comment\n\n  *.md  \n/abs/path\n./rel//x/../y\n!  /keep.md\n # not a comment\n!\n/\n"
    assert read_patterns(text) == ["*.md", "abs/path", "rel/y", "!keep.md", "# not a comment", "!", "/"]


@pytest.mark.parametrize(
    ("path", "expected"), [("", "."), ("a//b/", "a/b"), ("//x", "/x"), ("/../a", "/a"), ("a/..", ".")]
)
def test_go_clean(path: str, expected: str) -> None:
    assert go_clean(path) == expected


# (pattern, path, matched) from patternmatcher's TestMatches (MatchesOrParentMatches).
SINGLE_PATTERN_CASES = [
    ("**", "file", True),
    ("**", "file/", True),
    ("**/", "file", True),
    ("**/", "dir/file", True),
    ("**/**", "dir/file", True),
    ("dir/**", "dir/file", True),
    ("dir/**", "dir/dir2/file", True),
    ("**/dir", "dir", True),
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**/dir2/*", "dir/dir2/file/", True),
    ("**/dir2/**", "dir/dir2/dir3/file", True),
    ("**file", "file", True),
    ("**file", "dir/file", True),
    ("**/file", "dir/dir/file", True),
    ("**/file*", "dir/dir/file.txt", True),
    ("**/file*txt", "dir/dir/file.txt", True),
    ("**/**/*.txt", "dir/dir/file.txt", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("**/*.txt", "file.txt", True),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a/*.txt", "a/file.txt", True),
    ("a/*.txt**", "a/file.txt", True),
    ("a[b-d]e", "ae", False),
    ("a[b-d]e", "ace", True),
    ("a[^b-d]e", "aze", True),
    (".*", ".foo", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc.def", "abc.def", True),
    ("abc?def", "abcZdef", True),
    ("abc?def", "abcdef", False),
    ("**/foo/bar", "foo/bar", True),
    ("**/foo/bar", "dir/dir2/foo/bar", True),
    ("abc/**", "abc", False),
    ("abc/**", "abc/def/ghi", True),
    ("**/.foo", ".foo", True),
    ("**/.foo", "bar.foo", False),
    ("a(b)c/def", "a(b)c/def", True),
    ("a(b)c/def", "a(b)c/xyz", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("dist/*.whl", "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", True),
    ("a\\\\", "a\\", True),
    ("a\\*b", "a*b", True),
    ("docs", "docs/README.md", True),  # a directory pattern excludes its content
    ("/docs/", "docs/sub/x", True),
    ("./node_modules", "node_modules/a/b", True),
    ("Dockerfile", "Dockerfile", True),
    (".dockerignore", ".dockerignore", True),
    ("*", "a/b", True),  # matches the parent "a"
    ("*/b", "a/b/c", True),
    ("x", "a/x", False),  # patterns are anchored at the context root
]


@pytest.mark.parametrize(("pattern", "path", "expected"), SINGLE_PATTERN_CASES)
def test_single_pattern(pattern: str, path: str, expected: bool) -> None:
    assert IgnoreMatcher(read_patterns(pattern)).matches(path) is expected


MULTI_PATTERN_CASES = [
    (["**", "!util/docker/web"], "util/docker/web/foo", False),
    (["**", "!util/docker/web", "util/docker/web/foo"], "util/docker/web/foo", True),
    (["**", "!dist/*.whl"], "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl", False),
    (["!fileutils.go", "*.go"], "fileutils.go", True),
    (["*.go", "!fileutils.go"], "fileutils.go", False),
    (["docs", "!docs/README.md"], "docs/README.md", False),
    (["docs/", "!docs/README.md"], "docs/README.md", False),
    (["docs/*", "!docs/README.md"], "docs/README.md", False),
    (["docs", "!docs/README.md"], "docs/other.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-secret.md", True),
    (["*.md", "!README*.md", "README-secret.md"], "README-public.md", False),
    (["*.go"], ".", False),
    ([], "any/path", False),
]


@pytest.mark.parametrize(("patterns", "path", "expected"), MULTI_PATTERN_CASES)
def test_multiple_patterns_last_match_wins(patterns: list[str], path: str, expected: bool) -> None:
    assert IgnoreMatcher(patterns).matches(path) is expected


@pytest.mark.parametrize("patterns", [["!"], ["["], ["a/[b"]])
def test_bad_patterns(patterns: list[str]) -> None:
    with pytest.raises(DockerfileError):
        IgnoreMatcher(patterns)


@pytest.mark.parametrize(
    ("patterns", "directory", "expected"),
    [
        (["build"], "build", False),
        (["build", "!build/keep.txt"], "build", True),
        (["build", "!build/keep.txt"], "other", False),
        (["build", "!**/keep.txt"], "build", True),
        (["build", "!*/keep.txt"], "build", True),
        (["build", "!src/*.c"], "build", False),
        (["a/b", "!a"], "a/b", True),
        (["node_modules", "!node_modules/x/y"], "node_modules/z", False),
        (["node_modules", "!node_modules/x/y"], "node_modules/x", True),
    ],
)
def test_may_reinclude_under(patterns: list[str], directory: str, expected: bool) -> None:
    matcher = IgnoreMatcher(patterns)
    assert matcher.may_reinclude_under(directory) is expected
    assert matcher.has_exclusions is any(p.startswith("!") for p in patterns)


def test_load_ignore_prefers_dockerfile_specific_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("*.md\n")
    (tmp_path / "sub").mkdir()
    dockerfile = tmp_path / "sub" / "app.Dockerfile"
    dockerfile.write_text("FROM a\n")
    assert load_ignore(tmp_path, dockerfile).matches("README.md")
    (tmp_path / "sub" / "app.Dockerfile.dockerignore").write_text("# specific\n*.txt\n")
    matcher = load_ignore(tmp_path, dockerfile)
    assert matcher.matches("a.txt") and not matcher.matches("README.md")
    assert matcher.source.endswith("app.Dockerfile.dockerignore")


def test_load_ignore_without_file(tmp_path: Path) -> None:
    matcher = load_ignore(tmp_path, tmp_path / "Dockerfile")
    assert not matcher.matches("anything") and not matcher.has_exclusions
