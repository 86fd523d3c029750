"""OCI image models: descriptors, manifests, indexes and image configs.

Frozen dataclasses that parse from and serialise to the JSON of the OCI
image-spec (and Docker schema 2, which has the same shape). Serialisation is
deterministic, because manifest and config digests are digests of these bytes.
Unknown fields of a config are kept in `extra` so a base image's config
survives a round trip.
"""

from __future__ import annotations

import json
import platform as _host
from dataclasses import dataclass, field, replace
from typing import Any

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import WharfieError

__all__ = [
    "ContainerConfig",
    "Descriptor",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "canonical_json",
    "host_platform",
]


def canonical_json(obj: Any) -> bytes:
    """Compact JSON in the given key order: equal values give equal bytes and digests."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> Platform:
        parts = text.split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise WharfieError(f"invalid platform {text!r}: expected os/arch[/variant]")
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(data.get("os", ""), data.get("architecture", ""), data.get("variant") or None)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)

    def matches(self, other: Platform) -> bool:
        """Whether `other` (an index entry) satisfies this requested platform."""
        if self.os != other.os or self.architecture != other.architecture:
            return False
        return self.variant is None or self.variant == (other.variant or _default_variant(other.architecture))


def _default_variant(arch: str) -> str | None:
    return {"arm64": "v8", "arm": "v7"}.get(arch)


_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x",
            "i686": "386", "riscv64": "riscv64"}


def host_platform() -> Platform:
    """The machine's platform in Go's naming (linux/amd64, linux/arm64/v8, ...)."""
    arch = _GO_ARCH.get(_host.machine(), _host.machine())
    variant = "v7" if arch == "arm" else None
    return Platform("linux", arch, variant)


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    annotations: dict[str, str] | None = None
    platform: Platform | None = None
    urls: tuple[str, ...] | None = None
    artifact_type: str | None = None  # OCI 1.1: what an artifact manifest (a referrer) holds

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Descriptor:
        try:
            return cls(
                media_type=data.get("mediaType", ""),
                digest=Digest.parse(data["digest"]),
                size=int(data["size"]),
                annotations=data.get("annotations"),
                platform=Platform.from_json(data["platform"]) if "platform" in data else None,
                urls=tuple(data["urls"]) if data.get("urls") else None,
                artifact_type=data.get("artifactType") or None,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise WharfieError(f"invalid descriptor {data!r}: {exc}") from None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.urls:
            out["urls"] = list(self.urls)
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform:
            out["platform"] = self.platform.to_json()
        return out


def _load(raw: bytes, what: str) -> dict[str, Any]:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise WharfieError(f"invalid {what} JSON: {exc}") from None
    if not isinstance(data, dict):
        raise WharfieError(f"invalid {what}: not a JSON object")
    return data


@dataclass(frozen=True)
class Manifest:
    """An image manifest (OCI or Docker schema 2); an OCI 1.1 artifact has `artifact_type` and a `subject`."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] | None = None
    artifact_type: str | None = None
    subject: Descriptor | None = None  # the manifest this one refers to (an SBOM's image)

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str | None = None) -> Manifest:
        data = _load(raw, "manifest")
        if data.get("schemaVersion") != 2:
            raise WharfieError(f"unsupported manifest schemaVersion {data.get('schemaVersion')!r}")
        if "config" not in data:
            raise WharfieError("invalid manifest: no config descriptor")
        return cls(
            media_type=data.get("mediaType") or media_type or mt.OCI_MANIFEST,
            config=Descriptor.from_json(data["config"]),
            layers=tuple(Descriptor.from_json(d) for d in data.get("layers") or []),
            annotations=data.get("annotations"),
            artifact_type=data.get("artifactType") or None,
            subject=Descriptor.from_json(data["subject"]) if isinstance(data.get("subject"), dict) else None,
        )

    def to_bytes(self) -> bytes:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        out["config"] = self.config.to_json()
        out["layers"] = [d.to_json() for d in self.layers]
        if self.subject is not None:
            out["subject"] = self.subject.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return canonical_json(out)


@dataclass(frozen=True)
class Index:
    """An OCI image index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] | None = None

    @classmethod
    def from_bytes(cls, raw: bytes, media_type: str | None = None) -> Index:
        data = _load(raw, "index")
        if data.get("schemaVersion") != 2:
            raise WharfieError(f"unsupported index schemaVersion {data.get('schemaVersion')!r}")
        return cls(
            media_type=data.get("mediaType") or media_type or mt.OCI_INDEX,
            manifests=tuple(Descriptor.from_json(d) for d in data.get("manifests") or []),
            annotations=data.get("annotations"),
        )

    def to_bytes(self) -> bytes:
        out: dict[str, Any] = {"schemaVersion": 2, "mediaType": self.media_type,
                               "manifests": [d.to_json() for d in self.manifests]}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return canonical_json(out)

    def select(self, wanted: Platform) -> Descriptor:
        for desc in self.manifests:
            if desc.platform is not None and wanted.matches(desc.platform):
                return desc
        have = ", ".join(str(d.platform) for d in self.manifests if d.platform) or "none"
        raise WharfieError(f"no image for platform {wanted} (available: {have})")


# Go field name <-> python attribute, in the order docker writes them.
_CONTAINER_FIELDS = (
    ("User", "user"), ("ExposedPorts", "exposed_ports"), ("Env", "env"), ("Entrypoint", "entrypoint"),
    ("Cmd", "cmd"), ("Volumes", "volumes"), ("WorkingDir", "working_dir"), ("Labels", "labels"),
    ("StopSignal", "stop_signal"), ("Healthcheck", "healthcheck"), ("OnBuild", "on_build"),
    ("Shell", "shell"), ("ArgsEscaped", "args_escaped"),
)


@dataclass(frozen=True)
class ContainerConfig:
    """The `config` object of an image config: what a container runs with."""

    user: str | None = None
    exposed_ports: dict[str, dict[str, Any]] | None = None
    env: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    volumes: dict[str, dict[str, Any]] | None = None
    working_dir: str | None = None
    labels: dict[str, str] | None = None
    stop_signal: str | None = None
    healthcheck: dict[str, Any] | None = None
    on_build: tuple[str, ...] | None = None
    shell: tuple[str, ...] | None = None
    args_escaped: bool | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ContainerConfig:
        data = data or {}
        kwargs: dict[str, Any] = {}
        for go, py in _CONTAINER_FIELDS:
            value = data.get(go)
            if isinstance(value, list):
                value = tuple(value)
            kwargs[py] = value
        return cls(**kwargs)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for go, py in _CONTAINER_FIELDS:
            value = getattr(self, py)
            if value is None or value == "" or (py != "cmd" and py != "entrypoint" and value in ({}, ())):
                continue
            out[go] = list(value) if isinstance(value, tuple) else value
        return out

    def env_dict(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env or ():
            key, _, value = item.partition("=")
            out[key] = value
        return out


@dataclass(frozen=True)
class History:
    created: str | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool = False

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> History:
        return cls(data.get("created"), data.get("created_by"), data.get("author"), data.get("comment"),
                   bool(data.get("empty_layer", False)))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("created", "created_by", "author", "comment"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.empty_layer:
            out["empty_layer"] = True
        return out


_CONFIG_KNOWN = ("created", "author", "architecture", "os", "variant", "config", "rootfs", "history")


@dataclass(frozen=True)
class ImageConfig:
    """An image config blob (OCI image-spec `config.json`, or Docker's, which extends it)."""

    architecture: str = "amd64"
    os: str = "linux"
    variant: str | None = None
    created: str | None = None
    author: str | None = None
    config: ContainerConfig = field(default_factory=ContainerConfig)
    diff_ids: tuple[Digest, ...] = ()
    history: tuple[History, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_bytes(cls, raw: bytes) -> ImageConfig:
        data = _load(raw, "image config")
        rootfs = data.get("rootfs") or {}
        return cls(
            architecture=data.get("architecture", ""),
            os=data.get("os", ""),
            variant=data.get("variant") or None,
            created=data.get("created"),
            author=data.get("author"),
            config=ContainerConfig.from_json(data.get("config")),
            diff_ids=tuple(Digest.parse(d) for d in rootfs.get("diff_ids") or []),
            history=tuple(History.from_json(h) for h in data.get("history") or []),
            extra={k: v for k, v in data.items() if k not in _CONFIG_KNOWN},
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture}
        if self.author:
            out["author"] = self.author
        out["config"] = self.config.to_json()
        if self.created:
            out["created"] = self.created
        out["history"] = [h.to_json() for h in self.history]
        out["os"] = self.os
        out["rootfs"] = {"type": "layers", "diff_ids": [str(d) for d in self.diff_ids]}
        if self.variant:
            out["variant"] = self.variant
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    def to_bytes(self) -> bytes:
        return canonical_json(self.to_json())

    @property
    def platform(self) -> Platform:
        return Platform(self.os, self.architecture, self.variant)

    def with_container(self, **changes: Any) -> ImageConfig:
        return replace(self, config=replace(self.config, **changes))
