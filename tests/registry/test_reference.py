"""References parse and normalise as docker's: a table of names and what they mean."""

from __future__ import annotations

import pytest

from oci.digest import Digest
from registry.errors import InvalidReferenceError
from registry.reference import Reference, parse_reference

D = "sha256:" + "ab" * 32

VALID = [
    ("busybox", "docker.io", "library/busybox", None, None),
    ("busybox:1.36", "docker.io", "library/busybox", "1.36", None),
    ("library/busybox", "docker.io", "library/busybox", None, None),
    ("user/app:v2", "docker.io", "user/app", "v2", None),
    ("docker.io/busybox", "docker.io", "library/busybox", None, None),
    ("index.docker.io/library/busybox:latest", "docker.io", "library/busybox", "latest", None),
    ("registry-1.docker.io/user/app", "docker.io", "user/app", None, None),
    ("localhost/app", "localhost", "app", None, None),
    ("localhost:5000/app:1", "localhost:5000", "app", "1", None),
    ("127.0.0.1:5000/foo/bar", "127.0.0.1:5000", "foo/bar", None, None),
    ("[::1]:5000/foo", "[::1]:5000", "foo", None, None),
    ("registry.gitlab.com/group/subgroup/project/frontend:v1", "registry.gitlab.com",
     "group/subgroup/project/frontend", "v1", None),
    ("gitlab.example.com:5050/g/p", "gitlab.example.com:5050", "g/p", None, None),
    (f"busybox@{D}", "docker.io", "library/busybox", None, D),
    (f"host.io/a/b:tag@{D}", "host.io", "a/b", "tag", D),
    ("a.b/x__y/z-z.q_r:T_a-g.1", "a.b", "x__y/z-z.q_r", "T_a-g.1", None),
    ("Registry.Example.com/app", "Registry.Example.com", "app", None, None),
]


@pytest.mark.parametrize(("text", "registry", "repository", "tag", "digest"), VALID)
def test_valid(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert ref == Reference(registry, repository, tag, Digest.parse(digest) if digest else None)
    assert parse_reference(str(ref)) == ref  # str() is canonical and parses back


INVALID = [
    ("", "empty"),
    ("Busybox", "must be lowercase"),
    ("host.io/Group/app", "must be lowercase"),
    ("foo//bar", "invalid repository name"),
    ("foo/bar-", "invalid repository name"),
    ("foo:bad!tag", "invalid tag"),
    ("foo:" + "t" * 129, "invalid tag"),
    ("foo@sha256:123", "invalid digest"),
    ("https://host.io/app", "not a URL"),
    ("ab" * 32, "image id"),
    ("host.io/" + "a" * 250, "longer than 255"),
    ("ho_st.io/app", "invalid registry host"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_is_refused_naming_the_reference(text, message):
    with pytest.raises(InvalidReferenceError) as err:
        parse_reference(text)
    assert message in str(err.value)
    if text:
        assert repr(text) in str(err.value)


def test_helpers():
    ref = parse_reference("busybox:1")
    assert ref.api_host == "registry-1.docker.io"
    assert ref.familiar == "busybox:1"
    assert ref.identifier == "1"
    assert parse_reference("busybox").identifier == "latest"
    pinned = ref.with_digest(Digest.parse(D))
    assert pinned.identifier == D and str(pinned) == f"docker.io/library/busybox:1@{D}"
    assert ref.with_tag("2").tag == "2"
    assert ref.repo_ref == Reference("docker.io", "library/busybox")
    assert ref.context("push") == "docker.io/library/busybox (push)"
    assert ref.with_registry("mirror.example:5000", "hub").name == "mirror.example:5000/hub/library/busybox"
    assert parse_reference("localhost:5000/a").api_host == "localhost:5000"
    with pytest.raises(InvalidReferenceError):
        ref.with_tag("-bad")
