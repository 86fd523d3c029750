"""A cache entry's age is when wharfie stored it, never the date `--reproducible` gives images.

The build runs with ``--reproducible`` (every config dated at the epoch); the
test then moves one entry's store time 30 days back by rewriting its manifest
in the real registry, and `cache prune --older-than 14d` and ``--cache-ttl``
must treat exactly that entry as old.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import httpx

from fixtures.readback import run_wharfie
from fixtures.registry import Registry

STORED = "io.wharfie.cache.stored"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _tags(registry: Registry, repo: str) -> set[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list")
    return set(response.json().get("tags") or []) if response.status_code == 200 else set()


def _manifest(registry: Registry, repo: str, tag: str) -> dict:
    response = httpx.get(f"{registry.url}/v2/{repo}/manifests/{tag}", headers={"Accept": OCI_MANIFEST})
    response.raise_for_status()
    return response.json()


def test_prune_and_ttl_use_store_time(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    host = registry_open.host
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM $BASE\nRUN echo one > /one\nRUN echo two > /two\n")
    build = ["build", str(ctx), "-d", f"{host}/cachestore/app:latest", "--build-arg", f"BASE={busybox_ref}",
             "--insecure-registry", host, "--cache", "--reproducible", "-v", "debug"]
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    first = run_wharfie(*build, "--cache-dir", str(tmp_path / "c1"), env={"SOURCE_DATE_EPOCH": ""})
    assert first.returncode == 0, first.stderr
    keys = re.findall(r"cache key ([0-9a-f]{64})", first.stderr)
    cache_repo = "cachestore/app/cache"
    assert _tags(registry_open, cache_repo) == set(keys) and len(keys) == 2
    for key in keys:
        stored = dt.datetime.fromisoformat(_manifest(registry_open, cache_repo, key)["annotations"][STORED])
        assert before <= stored <= dt.datetime.now(dt.UTC)
    config = httpx.get(f"{registry_open.url}/v2/cachestore/app/manifests/latest", headers={"Accept": OCI_MANIFEST})
    config_digest = config.json()["config"]["digest"]
    image_config = httpx.get(f"{registry_open.url}/v2/cachestore/app/blobs/{config_digest}").json()
    assert image_config["created"] == "1970-01-01T00:00:00Z", "the image itself is dated by --reproducible"

    old_key, new_key = keys[1], keys[0]
    manifest = _manifest(registry_open, cache_repo, old_key)
    month_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
    manifest["annotations"][STORED] = month_ago.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    put = httpx.put(f"{registry_open.url}/v2/{cache_repo}/manifests/{old_key}", content=json.dumps(manifest),
                    headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text

    # --no-push-cache: the expired step must not be stored afresh before the prune below.
    again = run_wharfie(*build, "--cache-dir", str(tmp_path / "c2"), "--cache-ttl", "336h", "--no-push-cache",
                        env={"SOURCE_DATE_EPOCH": ""})
    assert again.returncode == 0, again.stderr
    assert f"cache entry {old_key[:12]} expired" in again.stderr
    assert f"cache hit {new_key[:12]}" in again.stderr

    repo = f"{host}/{cache_repo}"
    pruned = run_wharfie("cache", "prune", repo, "--older-than", "14d", "--insecure-registry", host)
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout.splitlines() == [f"Deleted cache entry {repo}:{old_key} (stored {month_ago.isoformat()})",
                                          f"1 cache entries deleted in {repo}"]
    assert _tags(registry_open, cache_repo) == {new_key}
