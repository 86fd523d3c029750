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


_MAX_SIZE = (1 << 63) - 1  # Go's int64: what every registry and runtime can represent


def _field(data: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str, default: Any = None) -> Any:
    """`data[key]` if it has the JSON type `kind` (absent or null: `default`); a `WharfieError` naming it if not.

    Documents come from registries and layouts we do not trust: a wrong type is
    refused here, once, rather than failing somewhere later as a TypeError.
    """
    value = data.get(key)
    if value is None:
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):  # JSON true is no integer
        names = {str: "a string", int: "an integer", bool: "a boolean", list: "an array", dict: "an object"}
        raise WharfieError(f"invalid {what}: {key!r} is not {' or '.join(names.get(k, k.__name__) for k in kinds)}")
    return value


def _strings(data: dict[str, Any], key: str, what: str) -> tuple[str, ...] | None:
    """An array of strings, or None when absent."""
    value = _field(data, key, list, what)
    if value is not None and not all(isinstance(item, str) for item in value):
        raise WharfieError(f"invalid {what}: {key!r} must be an array of strings")
    return tuple(value) if value is not None else None


def _string_map(data: dict[str, Any], key: str, what: str) -> dict[str, str] | None:
    """An object of string values (annotations, labels), or None when absent."""
    value: dict[str, str] | None = _field(data, key, dict, what)
    if value is not None and not all(isinstance(item, str) for item in value.values()):
        raise WharfieError(f"invalid {what}: {key!r} must map strings to strings")
    return value


def _objects(data: dict[str, Any], key: str, what: str) -> list[dict[str, Any]]:
    """An array of objects (descriptors, history entries); empty when absent."""
    value: list[dict[str, Any]] = _field(data, key, list, what, [])
    if not all(isinstance(item, dict) for item in value):
        raise WharfieError(f"invalid {what}: {key!r} must be an array of objects")
    return value


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
        if not isinstance(data, dict):
            raise WharfieError("invalid platform: not a JSON object")
        return cls(_field(data, "os", str, "platform", ""), _field(data, "architecture", str, "platform", ""),
                   _field(data, "variant", str, "platform") or None)

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
        if not isinstance(data, dict):
            raise WharfieError("invalid descriptor: not a JSON object")
        digest, size = _field(data, "digest", str, "descriptor"), _field(data, "size", int, "descriptor")
        if digest is None or size is None:
            raise WharfieError(f"invalid descriptor: no {'digest' if digest is None else 'size'}")
        if not 0 <= size <= _MAX_SIZE:
            raise WharfieError(f"invalid descriptor of {digest[:80]}: size {size} out of range")
        platform = _field(data, "platform", dict, "descriptor")
        return cls(
            media_type=_field(data, "mediaType", str, "descriptor", ""),
            digest=Digest.parse(digest),
            size=size,
            annotations=_string_map(data, "annotations", "descriptor"),
            platform=Platform.from_json(platform) if platform is not None else None,
            urls=_strings(data, "urls", "descriptor") or None,
            artifact_type=_field(data, "artifactType", str, "descriptor") or None,
        )

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
        if data.get("schemaVersion") != 2 or isinstance(data.get("schemaVersion"), bool):
            raise WharfieError(f"unsupported manifest schemaVersion {data.get('schemaVersion')!r:.20}")
        config = _field(data, "config", dict, "manifest")
        if config is None:
            raise WharfieError("invalid manifest: no config descriptor")
        return cls(
            media_type=_field(data, "mediaType", str, "manifest") or media_type or mt.OCI_MANIFEST,
            config=Descriptor.from_json(config),
            layers=tuple(Descriptor.from_json(d) for d in _objects(data, "layers", "manifest")),
            annotations=_string_map(data, "annotations", "manifest"),
            artifact_type=_field(data, "artifactType", str, "manifest") or None,
            subject=Descriptor.from_json(subject) if (subject := _field(data, "subject", dict, "manifest")) else None,
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
        if data.get("schemaVersion") != 2 or isinstance(data.get("schemaVersion"), bool):
            raise WharfieError(f"unsupported index schemaVersion {data.get('schemaVersion')!r:.20}")
        return cls(
            media_type=_field(data, "mediaType", str, "index") or media_type or mt.OCI_INDEX,
            manifests=tuple(Descriptor.from_json(d) for d in _objects(data, "manifests", "index")),
            annotations=_string_map(data, "annotations", "index"),
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


# The JSON type of each field (str unless listed): lists are of strings.
_CONTAINER_TYPES: dict[str, type] = {
    "ExposedPorts": dict, "Env": list, "Entrypoint": list, "Cmd": list, "Volumes": dict, "Labels": dict,
    "Healthcheck": dict, "OnBuild": list, "Shell": list, "ArgsEscaped": bool,
}


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
        if not isinstance(data, dict):
            raise WharfieError("invalid image config: 'config' is not an object")
        kwargs: dict[str, Any] = {}
        for go, py in _CONTAINER_FIELDS:
            kind = _CONTAINER_TYPES.get(go, str)
            if kind is list:
                kwargs[py] = _strings(data, go, "image config")
            elif go == "Labels":
                kwargs[py] = _string_map(data, go, "image config")
            else:
                kwargs[py] = _field(data, go, kind, "image config")
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
        what = "image config history"
        return cls(_field(data, "created", str, what), _field(data, "created_by", str, what),
                   _field(data, "author", str, what), _field(data, "comment", str, what),
                   bool(_field(data, "empty_layer", bool, what, False)))

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
        what = "image config"
        data = _load(raw, what)
        rootfs = _field(data, "rootfs", dict, what, {})
        return cls(
            architecture=_field(data, "architecture", str, what, ""),
            os=_field(data, "os", str, what, ""),
            variant=_field(data, "variant", str, what) or None,
            created=_field(data, "created", str, what),
            author=_field(data, "author", str, what),
            config=ContainerConfig.from_json(_field(data, "config", dict, what)),
            diff_ids=tuple(Digest.parse(d) for d in _strings(rootfs, "diff_ids", "image config rootfs") or ()),
            history=tuple(History.from_json(h) for h in _objects(data, "history", what)),
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
