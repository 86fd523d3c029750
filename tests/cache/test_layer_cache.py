"""The remote layer cache against the real registry, counted through the fault proxy."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from fixtures.readback import read_back, run_wharfie, tree_of
from fixtures.registry import Registry

DOCKERFILE = """\
ARG BASE
FROM $BASE
RUN for i in $(seq 1 200); do echo "$i" > /generated-$i; done
COPY app/ /app/
ENV MODE=prod
WORKDIR /srv
ARG LATE=one
RUN echo "$LATE" > /late.txt
CMD ["sh"]
"""
FS_STEPS = 4  # RUN, COPY, WORKDIR, RUN


@pytest.fixture
def context(tmp_path: Path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "app").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    for i in range(20):
        (ctx / "app" / f"file{i}.txt").write_text(f"content {i}\n" * 100)
    return ctx


def _build(ctx: Path, host: str, base: str, repo: str, cache_dir: Path, *extra: str):
    result = run_wharfie("build", str(ctx), "-d", f"{host}/{repo}:latest", "--build-arg", f"BASE={base}",
                         "--insecure-registry", host, "--cache", "--cache-dir", str(cache_dir), "--reproducible",
                         "-v", "debug", *extra)
    assert result.returncode == 0, result.stderr
    return result


def _keys(stderr: str) -> list[str]:
    return re.findall(r"cache key ([0-9a-f]{64})", stderr)


def _hits(stderr: str) -> int:
    return stderr.count("cache hit ")


def _manifest(registry: Registry, repo: str) -> str:
    import json

    response = httpx.get(f"{registry.url}/v2/{repo}/manifests/latest",
                         headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
    return json.dumps(response.json()["layers"])


def _tags(registry: Registry, repo: str) -> set[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list")
    return set(response.json().get("tags") or []) if response.status_code == 200 else set()


def test_rebuild_from_empty_local_state_moves_no_layer_bytes(registry_open: Registry, busybox_ref: str, fault_proxy,
                                                              context: Path, tmp_path: Path) -> None:
    proxy = fault_proxy(registry_open)
    base = f"{proxy.host}/library/busybox:latest"
    cold = _build(context, proxy.host, base, "cache/full", tmp_path / "cold")
    keys = _keys(cold.stderr)
    stored = _tags(registry_open, "cache/full/cache")
    # Lookup and store use the same keys: every filesystem step's key is a tag in the cache repo.
    assert len(stored) == FS_STEPS and stored <= set(keys)
    cold_digest = re.search(r"@(sha256:[0-9a-f]{64})", cold.stdout).group(1)

    proxy.reset()
    warm = _build(context, proxy.host, base, "cache/full", tmp_path / "warm")
    assert _hits(warm.stderr) == FS_STEPS
    assert _keys(warm.stderr) == keys
    blob_gets = {e.path.rsplit("/", 1)[-1] for e in proxy.exchanges if e.kind == "blob" and e.method == "GET"}
    layer_digests = {d for d in re.findall(r"sha256:[0-9a-f]{64}", _manifest(registry_open, "cache/full"))}
    assert blob_gets and not blob_gets & layer_digests, "a fully cached build downloads no layer (configs only)"
    assert proxy.uploaded_bytes("blob_upload") == 0, "a fully cached build uploads no layer"
    assert re.search(r"@(sha256:[0-9a-f]{64})", warm.stdout).group(1) == cold_digest


def test_changed_file_reruns_from_its_copy(registry_open: Registry, busybox_ref: str, context: Path,
                                           tmp_path: Path) -> None:
    host = registry_open.host
    first = _build(context, host, busybox_ref, "cache/changed", tmp_path / "c1")
    (context / "app" / "file3.txt").write_text("changed\n")
    second = _build(context, host, busybox_ref, "cache/changed", tmp_path / "c2")
    k1, k2 = _keys(first.stderr), _keys(second.stderr)
    # Steps: ARG? no (global ARG is before FROM); RUN, COPY, ENV, WORKDIR, ARG, RUN, CMD.
    assert k1[0] == k2[0], "the RUN before the COPY keeps its key"
    assert all(a != b for a, b in zip(k1[1:], k2[1:])), "every key from the COPY on changes"
    assert _hits(second.stderr) == 1


def test_late_build_arg_keeps_earlier_steps_cached(registry_open: Registry, busybox_ref: str, context: Path,
                                                   tmp_path: Path) -> None:
    host = registry_open.host
    first = _build(context, host, busybox_ref, "cache/late", tmp_path / "c1")
    second = _build(context, host, busybox_ref, "cache/late", tmp_path / "c2", "--build-arg", "LATE=two")
    k1, k2 = _keys(first.stderr), _keys(second.stderr)
    changed = [i for i, (a, b) in enumerate(zip(k1, k2)) if a != b]
    assert changed == list(range(4, len(k1))), "only the keys from the ARG LATE step on change"
    assert _hits(second.stderr) == 3


def test_ttl_expiry_forces_a_rebuild(registry_open: Registry, busybox_ref: str, context: Path,
                                     tmp_path: Path) -> None:
    host = registry_open.host
    _build(context, host, busybox_ref, "cache/ttl", tmp_path / "c1")
    again = _build(context, host, busybox_ref, "cache/ttl", tmp_path / "c2", "--cache-ttl", "0s")
    assert _hits(again.stderr) == 0
    assert "expired" in again.stderr


def test_read_only_cache_repo_still_builds(registry_token: Registry, token_accounts, registry_open: Registry,
                                           busybox_ref: str, context: Path, tmp_path: Path) -> None:
    job = token_accounts["ci_job"]  # may push to group/project/*, only pull elsewhere
    env = {"CI_REGISTRY": registry_token.host, "CI_JOB_TOKEN": job.password,
           "DOCKER_CONFIG": str(tmp_path / "no-docker-config")}
    result = run_wharfie("build", str(context), "-d", f"{registry_token.host}/group/project/app:1",
                         "--build-arg", f"BASE={busybox_ref}", "--insecure-registry", registry_open.host,
                         "--registry-certificate", f"{registry_token.host}={registry_token.ca_file}",
                         "--cache", "--cache-repo", f"{registry_token.host}/elsewhere/cache",
                         "--cache-dir", str(tmp_path / "c"), env=env)
    assert result.returncode == 0, result.stderr
    assert "could not store cache entry" in result.stderr
    assert job.password not in result.stdout + result.stderr


def test_cache_from_an_image_built_with_cache(registry_open: Registry, busybox_ref: str, context: Path,
                                              tmp_path: Path) -> None:
    host = registry_open.host
    _build(context, host, busybox_ref, "cache/from-src", tmp_path / "c1", "--no-push-cache")
    assert _tags(registry_open, "cache/from-src/cache") == set(), "--no-push-cache stores nothing"
    # Another repository, an empty cache repo: only the --cache-from image can give hits.
    again = _build(context, host, busybox_ref, "cache/from-dst", tmp_path / "c2",
                   "--cache-from", f"{host}/cache/from-src:latest", "--cache-repo", f"{host}/cache/empty-cache")
    assert again.stderr.count("(--cache-from)") == FS_STEPS


def test_cache_prune_deletes_old_entries(registry_open: Registry, busybox_ref: str, context: Path,
                                         tmp_path: Path) -> None:
    host = registry_open.host
    _build(context, host, busybox_ref, "cache/prune", tmp_path / "c1")
    repo = f"{host}/cache/prune/cache"
    assert len(_tags(registry_open, "cache/prune/cache")) == FS_STEPS
    dry = run_wharfie("cache", "prune", repo, "--older-than", "0s", "--dry-run", "--insecure-registry", host)
    assert dry.returncode == 0, dry.stderr
    assert len(_tags(registry_open, "cache/prune/cache")) == FS_STEPS
    kept = run_wharfie("cache", "prune", repo, "--older-than", "14d", "--insecure-registry", host)
    assert kept.returncode == 0 and len(_tags(registry_open, "cache/prune/cache")) == FS_STEPS
    pruned = run_wharfie("cache", "prune", repo, "--older-than", "0s", "--insecure-registry", host)
    assert pruned.returncode == 0, pruned.stderr
    assert _tags(registry_open, "cache/prune/cache") == set()


def test_copy_from_a_cached_stage_extracts_only_what_it_copies(registry_open: Registry, busybox_ref: str,
                                                               tmp_path: Path) -> None:
    ctx = tmp_path / "multi"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "ARG BASE\n"
        "FROM $BASE AS builder\n"
        "RUN mkdir -p /out /junk && echo artifact > /out/app && head -c 100000 /dev/zero > /junk/big\n"
        "FROM $BASE\n"
        "ARG FLAVOUR=a\n"
        "RUN echo $FLAVOUR > /flavour\n"
        "COPY --from=builder /out/app /usr/local/bin/app\n"
    )
    host = registry_open.host
    _build(ctx, host, busybox_ref, "cache/multi", tmp_path / "c1")
    second = _build(ctx, host, busybox_ref, "cache/multi", tmp_path / "c2", "--build-arg", "FLAVOUR=b")
    assert "extracted only out/app of builder" in second.stderr
    image = read_back(f"{host}/cache/multi:latest", tmp_path / "rb", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["usr/local/bin/app"][4] == "artifact\n" and tree["flavour"][4] == "b\n"
    assert "junk/big" not in tree


def test_cache_run_layers_false_reruns_run_steps_only(registry_open: Registry, busybox_ref: str, context: Path,
                                                      tmp_path: Path) -> None:
    host = registry_open.host
    _build(context, host, busybox_ref, "cache/kinds", tmp_path / "c1", "--cache-run-layers=false")
    assert len(_tags(registry_open, "cache/kinds/cache")) == FS_STEPS - 2, "RUN results are not stored"
    again = _build(context, host, busybox_ref, "cache/kinds", tmp_path / "c2", "--cache-run-layers=false")
    assert _hits(again.stderr) == FS_STEPS - 2, "COPY and WORKDIR still hit; the two RUNs run"


@pytest.mark.slow
def test_everything_that_changes_layer_bytes_is_in_the_key(registry_open: Registry, busybox_ref: str,
                                                            context: Path, tmp_path: Path) -> None:
    """A layer cached by one build format never answers another: each variant below misses every step."""
    host = registry_open.host

    def build(*extra: str):
        result = run_wharfie("build", str(context), "-d", f"{host}/cache/format:latest", "--build-arg",
                             f"BASE={busybox_ref}", "--insecure-registry", host, "--cache", "--cache-dir",
                             str(tmp_path / "c"), "-v", "debug", *extra)
        assert result.returncode == 0, result.stderr
        return result

    plain = build()
    assert _hits(plain.stderr) == 0
    assert _hits(build().stderr) == FS_STEPS, "the same format hits"
    seen = {tuple(_keys(plain.stderr))}
    for variant in (["--reproducible"], ["--compression", "zstd"], ["--compression-level", "1"]):
        result = build(*variant)
        assert _hits(result.stderr) == 0, f"{variant} reused a layer of another format"
        seen.add(tuple(_keys(result.stderr)))
    assert len(seen) == 4
    epoch = run_wharfie("build", str(context), "-d", f"{host}/cache/format:latest", "--build-arg",
                        f"BASE={busybox_ref}", "--insecure-registry", host, "--cache", "--cache-dir",
                        str(tmp_path / "c"), "-v", "debug", env={"SOURCE_DATE_EPOCH": "1700000000"})
    assert epoch.returncode == 0, epoch.stderr
    assert _hits(epoch.stderr) == 0, "SOURCE_DATE_EPOCH changes the timestamps in every layer"


def test_a_layer_goes_up_once_for_the_cache_and_the_destination(registry_open: Registry, busybox_ref: str,
                                                                 fault_proxy, context: Path, tmp_path: Path) -> None:
    """The cache store and the early push share one pusher: one upload per layer, the other repo mounts it."""
    proxy = fault_proxy(registry_open)
    base = f"{proxy.host}/library/busybox:latest"
    _build(context, proxy.host, base, "cache/once", tmp_path / "cold")
    built = re.findall(r"sha256:[0-9a-f]{64}", _manifest(registry_open, "cache/once"))[1:]  # not busybox's
    assert len(built) == FS_STEPS
    for digest in built:
        uploads = proxy.count("PUT", rf"digest={digest}|digest=sha256%3A{digest[7:]}", kind="blob_upload")
        mounted = [e for e in proxy.exchanges if e.method == "POST" and e.status == 201
                   and re.search(rf"mount=(sha256:|sha256%3A){digest[7:]}", e.path)]
        assert (uploads, len(mounted)) == (1, 1), digest
