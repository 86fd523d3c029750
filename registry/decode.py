"""Reading what a registry sent: bounded, and every failure a one-line error naming the reference.

Bodies are read up to their limit (registry/limits.py) and no further; JSON is
checked for depth before it is parsed; manifests, indexes and configs are
parsed by oci/models.py, whose complaints are re-raised here as
`InvalidResponseError`s that say which reference's answer was wrong. Nothing
from a registry reaches `json.loads` or the models any other way.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from oci.errors import WharfieError
from oci.models import ImageConfig, Index, Manifest
from registry.errors import InvalidResponseError, LimitExceededError
from registry.limits import MAX_JSON_DEPTH, MAX_LAYERS, json_too_deep, read_capped

__all__ = ["decode_config", "decode_index", "decode_manifest", "load_json", "read_limited"]

_MAX_QUOTED = 120


def read_limited(response: httpx.Response, limit: int, *, limit_name: str, what: str) -> bytes:
    """The body of a streamed `response`; past `limit` bytes a `LimitExceededError` naming `limit_name`."""
    return read_capped(
        response, limit,
        lambda: LimitExceededError(f"{what} is larger than {limit} bytes (limit: {limit_name})", limit=limit_name),
        lambda encoding: InvalidResponseError(f"{what} came with Content-Encoding {encoding!r}, not the identity "
                                              "asked for"))


def load_json(raw: bytes, *, what: str) -> Any:
    """`raw` as JSON (UTF-8, at most `MAX_JSON_DEPTH` deep); `InvalidResponseError` naming `what` if it is not."""
    if json_too_deep(raw):
        raise LimitExceededError(f"{what} nests JSON more than {MAX_JSON_DEPTH} levels deep (limit: JSON nesting "
                                 "depth)", limit="JSON nesting depth")
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidResponseError(f"{what} is not UTF-8 text") from None
    except RecursionError:  # json_too_deep is exact on UTF-8; this only backs it up
        raise LimitExceededError(f"{what} nests JSON too deep (limit: JSON nesting depth)",
                                 limit="JSON nesting depth") from None
    except ValueError as exc:
        raise InvalidResponseError(f"{what} is not valid JSON: {_quote(str(exc))}") from None


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."


def _checked(raw: bytes, what: str) -> None:
    load_json(raw, what=what)  # depth, UTF-8 and syntax, reported as ours before the models see it


def decode_manifest(raw: bytes, media_type: str, *, what: str) -> Manifest:
    """An image manifest from a registry, at most `MAX_LAYERS` layers; `what` names it (``manifest of REF``)."""
    _checked(raw, what)
    try:
        manifest = Manifest.from_bytes(raw, media_type)
    except WharfieError as exc:
        raise InvalidResponseError(f"{what}: {_quote(str(exc))}") from None
    if len(manifest.layers) > MAX_LAYERS:
        raise LimitExceededError(f"{what} has {len(manifest.layers)} layers, more than {MAX_LAYERS} "
                                 "(limit: layers per manifest)", limit="layers per manifest")
    return manifest


def decode_index(raw: bytes, media_type: str, *, what: str) -> Index:
    """An image index (manifest list) from a registry; `what` names it."""
    _checked(raw, what)
    try:
        return Index.from_bytes(raw, media_type)
    except WharfieError as exc:
        raise InvalidResponseError(f"{what}: {_quote(str(exc))}") from None


def decode_config(raw: bytes, *, what: str) -> ImageConfig:
    """An image config from a registry; `what` names it (``config of REF``)."""
    _checked(raw, what)
    try:
        return ImageConfig.from_bytes(raw)
    except WharfieError as exc:
        raise InvalidResponseError(f"{what}: {_quote(str(exc))}") from None
