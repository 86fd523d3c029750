"""kaniko's whole executor command line is accepted by `wharfie build` (issue #12).

The flag list is data read from kaniko v1.23.2's cmd/executor/cmd/root.go
(kaniko_v1.23.2_flags.txt); these tests parse wharfie's command line with each
flag in each of kaniko's spellings, without building, and check the value
arrives where wharfie reads it. What each flag does to a build is proven in
tests/e2e/test_kaniko_cli.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import click
import pytest

from builder.cli.app import build
from builder.cli.kaniko_argv import go_duration_seconds, normalize
from builder.cli.kaniko_flags import KANIKO_FLAGS

FLAG_FILE = Path(__file__).with_name("kaniko_v1.23.2_flags.txt")


def kaniko_flags() -> list[tuple[str, str, str, str]]:
    rows = []
    for line in FLAG_FILE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, short, kind, default = line.split()
            rows.append((name, short, kind, default))
    return rows


SAMPLES = {"bool": "true", "string": "some-value", "int": "3", "duration": "1h30m", "multi": "value",
           "keyvalue": "reg.example=/etc/x.pem", "multikeyvalue": "index.docker.io=mirror.example;quay.io=m2.example",
           "git": "branch=main", "compression": "zstd"}
# Flags whose values wharfie checks while parsing: give them one it takes.
VALUES = {"verbosity": "debug", "log-format": "json", "snapshot-mode": "time", "custom-platform": "linux/arm64",
          "snapshotMode": "time", "customPlatform": "linux/arm64", "registry-client-cert": "reg.example=/c.pem,/k.pem",
          "build-arg": "A=1", "label": "a=b", "compression": "zstd", "cache-ttl": "1h30m"}


def parse(*args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """The values click hands `wharfie build` for ARGS (normalised as the real command does), nothing run."""
    import os

    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        with build.make_context("build", list(args)) as context:
            return dict(context.params)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_the_fixture_is_kaniko_v1_23_2_whole_and_the_table_names_every_flag() -> None:
    names = [row[0] for row in kaniko_flags()]
    assert len(names) == 60 and len(set(names)) == 60
    table = {flag.name: flag for flag in KANIKO_FLAGS}
    assert set(names) <= set(table), set(names) - set(table)
    shorts = {row[0]: row[1] for row in kaniko_flags() if row[1] != "-"}
    assert shorts == {"verbosity": "v", "dockerfile": "f", "context": "c", "bucket": "b", "destination": "d"}
    assert all(table[name].short == short for name, short in shorts.items())
    assert all(flag.meaning for flag in KANIKO_FLAGS)


@pytest.mark.parametrize(("name", "short", "kind", "default"), kaniko_flags(), ids=[r[0] for r in kaniko_flags()])
def test_every_kaniko_flag_is_accepted(name: str, short: str, kind: str, default: str) -> None:
    value = VALUES.get(name, SAMPLES[kind])
    params = parse(f"--{name}={value}")
    params_spaced = parse(f"--{name}", value) if kind != "bool" else parse(f"--{name}")
    assert params == params_spaced
    if short != "-":
        assert parse(f"-{short}", value) == params
        assert parse(f"-{short}={value}") == params, "pflag reads -v=debug as -v debug"


@pytest.mark.parametrize("name", [row[0] for row in kaniko_flags() if row[2] == "bool"])
@pytest.mark.parametrize("spelling", ["true", "false", "1", "0", "t", "F", "TRUE", "False"])
def test_every_boolean_takes_go_spellings(name: str, spelling: str) -> None:
    parse(f"--{name}={spelling}")


def test_boolean_values_arrive() -> None:
    assert parse("--no-push=true")["push"] is False
    assert parse("--no-push=false")["push"] is True
    assert parse("--no-push")["push"] is False
    assert parse("--reproducible=1")["source_date_epoch"] == 0
    assert parse("--cache")["cache"] is True
    assert parse("--cache=false")["cache"] is False
    assert parse("--cleanup")["kaniko_cleanup"] == "true"
    assert parse("--cleanup=f")["kaniko_cleanup"] == "f"
    with pytest.raises(click.BadParameter, match="expected true or false, got 'yes please'"):
        parse("--no-push=yes please")


def test_a_bare_boolean_never_swallows_the_context_argument() -> None:
    params = parse("--cache", "ctxdir")
    assert params["cache"] is True and params["context_argument"] == "ctxdir"
    params = parse("--cleanup", "ctxdir")
    assert params["kaniko_cleanup"] == "true" and params["context_argument"] == "ctxdir"


def test_kaniko_spellings_become_wharfies() -> None:
    assert parse("-v", "trace")["verbosity"] == "debug"
    assert parse("--verbosity=panic")["verbosity"] == "error"
    assert parse("-vfatal")["verbosity"] == "error"
    assert parse("--customPlatform=linux/arm64")["platform"] == "linux/arm64"
    assert parse("--custom-platform=linux/arm64")["platform"] == "linux/arm64"
    assert parse("--snapshotMode", "time")["snapshot_mode"] == "time"
    assert parse("--tarPath=/out/image.tar")["kaniko_tar_path"] == "/out/image.tar"
    assert parse("--whitelist-var-run=false")["kaniko_ignore_var_run"] == "false"
    assert parse("--cache-ttl=336h0m0s")["cache_ttl"] == dt.timedelta(seconds=1209600)
    assert parse("--cache-ttl", "14d")["cache_ttl"] == dt.timedelta(days=14)
    assert parse("--compression-level=-1")["compression_level"] is None
    assert parse("--compression-level=3")["compression_level"] == 3
    assert parse("--registry-map=a.example=b.example;c.example=d.example")["kaniko_registry_map"] == (
        "a.example=b.example;c.example=d.example",)


def test_kaniko_environment_variables() -> None:
    assert parse("-d", "r.example/a", env={"KANIKO_NO_PUSH": "true"})["push"] is False
    assert parse("--no-push", env={"KANIKO_NO_PUSH": "false"})["push"] is True, "the variable wins, as in kaniko"
    assert parse(env={"KANIKO_REGISTRY_MIRROR": "mirror.example"})["mirrors"] == ("mirror.example",)
    assert parse("--registry-mirror=m1.example", env={"KANIKO_REGISTRY_MIRROR": "m2.example"})["mirrors"] == (
        "m1.example", "m2.example")
    assert parse(env={"KANIKO_REGISTRY_MAP": "quay.io=q.example"})["kaniko_registry_map"] == ("quay.io=q.example",)
    assert parse(env={"KANIKO_DIR": "/k2"})["kaniko_kaniko_dir"] == "/k2"
    assert parse("--kaniko-dir=/k1", env={"KANIKO_DIR": "/k2"})["kaniko_kaniko_dir"] == "/k1", "the flag wins"
    with pytest.raises(click.UsageError, match="KANIKO_NO_PUSH: expected true or false, got 'maybe'"):
        parse(env={"KANIKO_NO_PUSH": "maybe"})


def test_normalize_leaves_values_and_arguments_alone() -> None:
    normalized = normalize(["-d", "--no-push", "--label", "x=--cache", "ctx", "--", "--cache"], build, {})
    assert normalized.args == ["-d", "--no-push", "--label", "x=--cache", "ctx", "--", "--cache"]


@pytest.mark.parametrize(("text", "seconds"), [("336h0m0s", 1209600), ("1h30m", 5400), ("90s", 90), ("1.5h", 5400),
                                                ("500ms", 0), ("0", 0), ("14d", None), ("h", None), ("", None),
                                                ("-1h", None)])
def test_go_durations(text: str, seconds: int | None) -> None:
    assert go_duration_seconds(text) == seconds
