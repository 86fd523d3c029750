"""Fuzzing image references: registry/reference.py parses what docker parses, refuses the rest in one line.

Generated references follow distribution's grammar (reference/regexp.go); each
must parse, and print back to a string that parses to the same reference.
Arbitrary text must parse into a reference whose every part is within that
(ASCII) grammar, or fail with an InvalidReferenceError whose one-line message
quotes it.
"""

from __future__ import annotations

import re

import pytest
from fuzz_support import fuzz_settings, outcome, time_limit
from hypothesis import example, given
from hypothesis import strategies as st

from registry.errors import InvalidReferenceError
from registry.reference import Reference, parse_host, parse_reference

# distribution/reference/regexp.go, written out again here as the oracle (ASCII only, as Go's \w is).
COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*", re.ASCII)
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", re.ASCII)
DOMAIN = re.compile(r"(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9]"
                    r"[a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?", re.ASCII)

LOWER = st.text("abcz09", min_size=1, max_size=5)
SEPARATOR = st.sampled_from([".", "_", "__", "-", "--"])
COMPONENTS = st.builds(lambda first, rest: first + "".join(s + w for s, w in rest), LOWER,
                       st.lists(st.tuples(SEPARATOR, LOWER), max_size=2))
DOMAINS = st.one_of(st.sampled_from(["localhost", "localhost:5000", "registry.example.com", "gitlab.example:443",
                                     "[::1]:5000", "[fe80::1]", "10.0.0.1:5000", "Registry.Example"]),
                    st.builds(lambda a, b: f"{a}.{b}", LOWER, LOWER))
TAGS = st.text("abcXYZ019_.-", min_size=1, max_size=20).filter(lambda t: t[0] not in ".-")
DIGESTS = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: "sha256:" + h)


@st.composite
def valid_references(draw: st.DrawFn) -> str:
    path = "/".join(draw(st.lists(COMPONENTS, min_size=1, max_size=3)))
    # Without a domain, a first component holding a '.' would be read as one (docker's splitDockerDomain).
    text = f"{draw(DOMAINS)}/{path}" if draw(st.booleans()) or "." in path.split("/")[0] else path
    if draw(st.booleans()):
        text += ":" + draw(TAGS)
    if draw(st.booleans()):
        text += "@" + draw(DIGESTS)
    return text


@fuzz_settings(200)
@given(valid_references())
@example("busybox")
@example("localhost/a:b")
def test_valid_references_parse_and_print_back(text: str) -> None:
    try:
        ref = parse_reference(text)
    except InvalidReferenceError as exc:
        assert len(text.partition("@")[0].partition(":")[0]) > 200 or "64-character hex" in str(exc), exc
        return
    assert parse_reference(str(ref)) == ref
    assert parse_reference(ref.familiar) == ref
    assert parse_reference(ref.name).repo_ref == ref.repo_ref


def assert_within_grammar(ref: Reference) -> None:
    assert DOMAIN.fullmatch(ref.registry), ref.registry
    assert all(COMPONENT.fullmatch(part) for part in ref.repository.split("/")), ref.repository
    assert ref.tag is None or TAG.fullmatch(ref.tag), ref.tag
    assert len(ref.name) <= 255


SHARP = st.sampled_from(["\x00", "\n", " ", "\t", "é", "ß", "\u0660", "K", "/", ":", "@", "//", "::", "[", "]",
                         "%", "..", "-", "_", "__", "___", "sha256:", "A", "\ufeff"])


@st.composite
def mutated_references(draw: st.DrawFn) -> str:
    text = draw(valid_references())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(SHARP) + text[at + draw(st.integers(0, 2)):]
    return text


@fuzz_settings(300)
@given(st.one_of(mutated_references(), st.text(max_size=40)))
@example("busybox:tést")  # Python's \w took non-ASCII letters into tags
@example("busybox:\u0661\u0662")
@example("a" * 1_000_000)
@example("busybox@sha256:" + "a" * 64 + "\n")
def test_any_text_is_a_reference_within_the_grammar_or_one_error(text: str) -> None:
    with time_limit(5, "parse_reference"):
        try:
            ref = parse_reference(text)
        except InvalidReferenceError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) < 2000, message[:300]
            outcome("refused")
            return
    assert_within_grammar(ref)
    outcome("parsed")


@fuzz_settings(150)
@given(st.one_of(DOMAINS, st.text(max_size=30), mutated_references()))
@example("[::1")
@example("host:port")
def test_hosts_are_hosts_or_refused(text: str) -> None:
    try:
        host = parse_host(text)
    except InvalidReferenceError as exc:
        assert "\n" not in str(exc)
        return
    assert DOMAIN.fullmatch(host)
    if any(c in host for c in ".:") or host == "localhost":  # else a reference reads it as a path component
        assert parse_reference(f"{host}/x").registry == host


@pytest.mark.parametrize("text", ["busybox:tést", "busybox:\u0661", "x/\u00e9", "ḃusybox"])
def test_non_ascii_is_refused(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)
