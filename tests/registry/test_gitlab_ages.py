"""Ages that mean what users think: a reproducible image pushed now is never "older than 1d".

The image is built by wharfie itself with ``--reproducible`` (its config dated
at the epoch, read back by skopeo), then cleaned up on the plain registry
(where no push time exists: kept, and the output says why) and through
GitLab's API (whose created_at is when the registry stored it).
"""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from gitlab_helpers import push_tags, registry_tags

from builder.cli.app import cli
from fixtures.readback import run_wharfie, skopeo_inspect
from fixtures.registry import Registry

REPO = "glages/project/app"


def run(*args: str, env: dict[str, str] | None = None):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


@pytest.fixture(scope="module")
def reproducible_today(registry_open: Registry, busybox_ref: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """``HOST/glages/project/app:today``, built and pushed just now with ``--reproducible``."""
    ctx = tmp_path_factory.mktemp("repro-ctx")
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM $BASE\nRUN echo today > /today\n")
    ref = f"{registry_open.host}/{REPO}:today"
    built = run_wharfie("build", str(ctx), "-d", ref, "--build-arg", f"BASE={busybox_ref}", "--insecure-registry",
                        registry_open.host, "--reproducible", "--cache-dir", str(tmp_path_factory.mktemp("c")),
                        env={"SOURCE_DATE_EPOCH": ""})
    assert built.returncode == 0, built.stderr
    config = skopeo_inspect(ref, ["--tls-verify=false"], config=True)
    assert config["created"] == "1970-01-01T00:00:00Z", "the build chose the epoch, as --reproducible does"
    return ref


def test_plain_registry_keeps_a_reproducible_image_pushed_now(registry_open, reproducible_today):
    repo = reproducible_today.rsplit(":", 1)[0]
    result = run("cleanup", repo, "--name-regex-delete", ".*", "--older-than", "1d")
    assert result.stdout.splitlines()[0] == (
        f"Kept {repo}:today: its image config is dated 1970-01-01T00:00:00+00:00, before container images existed: "
        "a date fixed for reproducible builds, not when it was pushed; a plain registry records no push time "
        "(give --gitlab-url for GitLab's created_at, or --trust-image-dates to use the config's date)")
    assert "Using the registry API of" in result.stderr
    assert registry_tags(registry_open, REPO) == ["today"]
    trusting = run("cleanup", repo, "--name-regex-delete", ".*", "--older-than", "1d", "--trust-image-dates",
                   "--dry-run")
    assert trusting.stdout.splitlines()[0] == f"Would delete {repo}:today (1970-01-01T00:00:00+00:00)"


def test_gitlab_api_dates_a_reproducible_image_by_its_push(registry_open, reproducible_today, gitlab_api):
    repo = reproducible_today.rsplit(":", 1)[0]
    api = gitlab_api({"glages/project": 31})
    api.add_access_token("glpat-ages")
    args = ["cleanup", repo, "--gitlab-url", api.url, "--name-regex-delete", ".*", "--older-than", "1d"]
    kept = run(*args, env={"GITLAB_TOKEN": "glpat-ages"})
    assert kept.stdout.strip() == f"Nothing to delete in {repo}"
    assert registry_tags(registry_open, REPO) == ["today"]
    api.set_created(REPO, "today", dt.datetime.now(dt.UTC) - dt.timedelta(days=2))
    gone = run(*args, "--dry-run", env={"GITLAB_TOKEN": "glpat-ages"})
    assert gone.stdout.startswith(f"Would delete {repo}:today (")


def test_source_date_epoch_makes_config_dates_doubtful(registry_open, store):
    push_tags(registry_open, store, "glages/sde/app", ["commit"], created="2024-03-01T12:00:00Z")
    repo = f"{registry_open.host}/glages/sde/app"
    args = ["cleanup", repo, "--name-regex-delete", ".*", "--older-than", "1d", "--dry-run"]
    epoch = str(int(dt.datetime(2024, 3, 1, 12, tzinfo=dt.UTC).timestamp()))
    doubted = run(*args, env={"SOURCE_DATE_EPOCH": epoch}).stdout
    assert doubted.startswith(f"Kept {repo}:commit: its image config is dated 2024-03-01T12:00:00+00:00, at or "
                              "before $SOURCE_DATE_EPOCH")
    assert run(*args).stdout.startswith(f"Would delete {repo}:commit (2024-03-01T12:00:00+00:00)")


def test_a_tag_without_a_date_is_kept_and_says_so():
    """The pure plan: a tag with no date at all is kept by --older-than, never deleted."""
    from oci.digest import Digest
    from registry.cleanup import CleanupPolicy, TagInfo, date_doubt, make_plan

    now = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    tags = [TagInfo("nodate", Digest.of_bytes(b"x"), None, doubt=date_doubt(None, "image config", source_date_epoch=None)),
            TagInfo("old", Digest.of_bytes(b"y"), now - dt.timedelta(days=9))]
    plan = make_plan(tags, CleanupPolicy(".*", older_than=dt.timedelta(days=1)), now)
    assert [t.name for t in plan.delete] == ["old"] and [t.name for t in plan.undated] == ["nodate"]
    assert plan.undated[0].doubt == "no date in its image config"
