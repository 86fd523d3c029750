"""Image references, parsed and normalised with the grammar of distribution's `reference` package.

One parser for every place a user names an image (FROM, --destination, pull,
tags, cleanup), so `busybox`, `docker.io/library/busybox:latest` and
`index.docker.io/library/busybox` all name the same repository, and a bad name
is refused once, with a message naming it, before any request is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from oci.digest import Digest
from oci.errors import WharfieError
from registry.errors import InvalidReferenceError

__all__ = [
    "DEFAULT_REGISTRY",
    "DEFAULT_TAG",
    "DOCKER_HUB_API_HOST",
    "InvalidReferenceError",
    "Reference",
    "api_host",
    "normalize_host",
    "parse_host",
    "parse_reference",
]

DEFAULT_REGISTRY = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"
_LEGACY_HUB_HOSTS = frozenset({"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_NAME_MAX = 255

# distribution/reference/regexp.go, spelled out.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*"
_NAME_RE = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?")
_TAG_RE = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)  # Go's \w is ASCII; Python's takes any letter
_HEX64_RE = re.compile(r"[a-f0-9]{64}")


@dataclass(frozen=True)
class Reference:
    """A normalised image reference: registry host, repository path, tag and/or digest.

    `registry` is what the user named (``docker.io`` for Docker Hub); `api_host`
    is where requests go (``registry-1.docker.io``).
    """

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def name(self) -> str:
        """``registry/repository``: the repository as users write it, for messages and config keys."""
        return f"{self.registry}/{self.repository}"

    @property
    def familiar(self) -> str:
        """The short form docker prints (``busybox:latest``, ``user/app``, ``host:5000/x:1``)."""
        name = self.name
        if self.registry == DEFAULT_REGISTRY:
            name = self.repository.removeprefix("library/")
        return name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    @property
    def identifier(self) -> str:
        """What goes after ``/manifests/``: the digest when pinned, else the tag (``latest`` by default)."""
        if self.digest is not None:
            return str(self.digest)
        return self.tag or DEFAULT_TAG

    @property
    def api_host(self) -> str:
        return api_host(self.registry)

    @property
    def repo_ref(self) -> Reference:
        """The same repository without tag or digest."""
        return Reference(self.registry, self.repository)

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"invalid tag {_quote(tag)} for {self.name}: "
                                 "up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-'")
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: Digest) -> Reference:
        return replace(self, digest=digest)

    def with_registry(self, registry: str, prefix: str = "") -> Reference:
        """The same image in another registry (a mirror), optionally under a path prefix.

        Both are checked as a reference's would be: a mirror flag is user input that becomes a URL.
        """
        host = parse_host(registry)
        repository = f"{prefix.strip('/')}/{self.repository}" if prefix.strip("/") else self.repository
        if not _NAME_RE.fullmatch(repository):
            raise InvalidReferenceError(f"invalid repository path {_quote(prefix)} under registry {host}")
        return replace(self, registry=host, repository=repository)

    def context(self, action: str) -> str:
        """``HOST/REPO (ACTION)``: how errors name what was being done to which repository."""
        return f"{self.name} ({action})"


def parse_host(text: str) -> str:
    """A registry host as `docker login` and the registry flags take it (``HOST[:PORT]``), normalised.

    Raises `InvalidReferenceError` for anything that is not one, before it becomes a URL.
    """
    if not _DOMAIN_RE.fullmatch(text):
        raise InvalidReferenceError(f"invalid registry host {_quote(text)}: expected HOST[:PORT]")
    return normalize_host(text)


def _quote(text: str) -> str:
    """`text` quoted for an error message, cut short: a message names the reference, it need not hold a megabyte."""
    return repr(text if len(text) <= 512 else text[:512] + "...")


def normalize_host(host: str) -> str:
    """Docker Hub's aliases become ``docker.io``; anything else is kept as written."""
    return DEFAULT_REGISTRY if host in _LEGACY_HUB_HOSTS else host


def api_host(registry: str) -> str:
    """The host that serves the registry API for `registry` (Docker Hub's differs from its name)."""
    return DOCKER_HUB_API_HOST if registry == DEFAULT_REGISTRY else registry


def _split_domain(text: str, original: str) -> tuple[str, str]:
    # distribution's splitDockerDomain: the first component is a host only when
    # it looks like one (a dot, a port, localhost, or uppercase letters).
    first, sep, rest = text.partition("/")
    if sep and (("." in first) or (":" in first) or first == "localhost" or first.lower() != first):
        if not _DOMAIN_RE.fullmatch(first):
            raise InvalidReferenceError(f"invalid reference {_quote(original)}: invalid registry host {_quote(first)}")
        return normalize_host(first), rest
    return DEFAULT_REGISTRY, text


def _split_suffixes(text: str, original: str) -> tuple[str, str | None, Digest | None]:
    digest: Digest | None = None
    if "@" in text:
        text, _, raw_digest = text.partition("@")
        try:
            digest = Digest.parse(raw_digest)
        except WharfieError as exc:
            raise InvalidReferenceError(f"invalid reference {_quote(original)}: {exc}") from None
    tag: str | None = None
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1:]
        if not _TAG_RE.fullmatch(tag):
            raise InvalidReferenceError(f"invalid reference {_quote(original)}: invalid tag {_quote(tag)} "
                                 "(up to 128 letters, digits, '_', '.' or '-', not starting with '.' or '-')")
    return text, tag, digest


def parse_reference(text: str) -> Reference:
    """Parse `text` as docker does: ``[HOST[:PORT]/]PATH[:TAG][@DIGEST]``.

    Raises `InvalidReferenceError` naming the reference for anything docker would refuse.
    """
    original = text
    text = text.strip()
    if not text:
        raise InvalidReferenceError("invalid reference: empty image name")
    if "://" in text:
        raise InvalidReferenceError(f"invalid reference {_quote(original)}: give HOST/PATH[:TAG], not a URL")
    registry, remainder = _split_domain(text, original)
    path, tag, digest = _split_suffixes(remainder, original)
    if registry == DEFAULT_REGISTRY and "/" not in path:
        if _HEX64_RE.fullmatch(path):
            raise InvalidReferenceError(f"invalid reference {_quote(original)}: a 64-character hex string is an image id, "
                                 "not a repository name")
        path = f"library/{path}"
    if path.lower() != path and _NAME_RE.fullmatch(path.lower()):
        raise InvalidReferenceError(f"invalid reference {_quote(original)}: repository name must be lowercase")
    if not _NAME_RE.fullmatch(path):
        raise InvalidReferenceError(f"invalid reference {_quote(original)}: invalid repository name {_quote(path)} (lowercase "
                             "letters, digits and separators '.', '_', '__', '-', components joined by '/')")
    if len(f"{registry}/{path}") > _NAME_MAX:
        raise InvalidReferenceError(f"invalid reference {_quote(original)}: repository name longer than {_NAME_MAX} characters")
    return Reference(registry, path, tag, digest)
