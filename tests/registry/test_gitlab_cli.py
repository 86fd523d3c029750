"""`repositories ls`, `tags ls` and `cleanup` through GitLab's REST API, against the API fixture over the real registry.

Outcomes are read back from the registry itself (its own tag list), and the
requests the API saw say which endpoint did the work (bulk or per tag).
"""

from __future__ import annotations

import datetime as dt
import json
import re

from click.testing import CliRunner
from gitlab_helpers import push_tags, registry_tags

from builder.cli.app import cli
from fixtures.net import free_port
from fixtures.readback import run_wharfie

NOW = dt.datetime.now(dt.UTC)
TOKEN = "glpat-Kx7-distinctive-0042"
JOB_TOKEN = "job-Kx7-distinctive-4242"


def run(*args: str, env: dict[str, str] | None = None, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), env=env, catch_exceptions=True)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def _deletes(api) -> list[str]:
    return [c.path for c in api.calls if c.method == "DELETE"]


def test_repositories_ls_in_a_job(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glcli/repos/app", ["a", "b", "c"])
    push_tags(registry_open, store, "glcli/repos", ["main"])
    api = gitlab_api({"glcli/repos": 21})
    api.add_job_token(JOB_TOKEN, "glcli/repos")
    env = {"CI_API_V4_URL": api.url, "CI_PROJECT_ID": "21", "CI_JOB_TOKEN": JOB_TOKEN}
    listed = run("repositories", "ls", "--format", "json", env=env)
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["path"], r["tags_count"]) for r in rows] == [("", "glcli/repos", 1),
                                                                       ("app", "glcli/repos/app", 3)]
    assert f"Using GitLab's REST API at {api.url} (JOB-TOKEN from $CI_JOB_TOKEN)" in listed.stderr
    text = run("repositories", "ls", env=env).stdout.splitlines()
    assert text[0].split() == ["ID", "PATH", "TAGS", "NAME"]
    assert text[2].split()[1:] == ["glcli/repos/app", "3", "app"]
    assert {c.token_header for c in api.calls} == {"JOB-TOKEN"}
    assert TOKEN not in listed.output and JOB_TOKEN not in listed.output


def test_tags_ls_pages_through_gitlab_with_details(registry_open, store, gitlab_api):
    images = push_tags(registry_open, store, "glcli/tags/app", ["t1", "t2", "t3", "t4", "t5"])
    api = gitlab_api({"glcli/tags": 22})
    api.add_access_token(TOKEN)
    old = NOW - dt.timedelta(days=40)
    api.set_created("glcli/tags/app", "t2", old)
    repo = f"{registry_open.host}/glcli/tags/app"
    result = run("tags", "ls", repo, "--gitlab-url", api.url, "--page-size", "2", "--format", "json",
                 env={"GITLAB_TOKEN": TOKEN})
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert sorted(rows) == ["t1", "t2", "t3", "t4", "t5"]
    assert rows["t2"]["digest"] == str(images["t2"].digest)
    assert rows["t2"]["size"] == sum(layer.size for layer in images["t2"].layers)
    assert dt.datetime.fromisoformat(rows["t2"]["created_at"]) == old.replace(microsecond=old.microsecond // 1000 * 1000)
    assert "PRIVATE-TOKEN from $GITLAB_TOKEN" in result.stderr and "project glcli/tags" in result.stderr
    pages = [c.params.get("page") for c in api.calls if c.path.endswith("/tags")]
    assert pages == [None, "2", "3"]
    # The project came from the path: glcli/tags/app is no project (404), glcli/tags is.
    assert [c.status for c in api.calls if c.path.endswith("/registry/repositories")] == [404, 200]
    text = run("tags", "ls", repo, "--gitlab-url", api.url, env={"GITLAB_TOKEN": TOKEN}).stdout.splitlines()
    assert text[0].split() == ["NAME", "DIGEST", "SIZE", "CREATED_AT"]
    assert text[2].split()[:2] == ["t2", str(images["t2"].digest)]


def test_pages_by_x_next_page_and_never_off_origin(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glcli/links/app", ["l1", "l2", "l3"])
    api = gitlab_api({"glcli/links": 23})
    api.add_access_token(TOKEN)
    args = ["tags", "ls", f"{registry_open.host}/glcli/links/app", "--gitlab-url", api.url, "--page-size", "1",
            "--format", "json"]
    api.send_link = False
    assert [r["name"] for r in json.loads(run(*args, env={"GITLAB_TOKEN": TOKEN}).stdout)] == ["l1", "l2", "l3"]
    # A Link to another origin (nothing listens there) is not followed: X-Next-Page is, and the token stays home.
    api.send_link, api.link_origin = True, f"http://127.0.0.1:{free_port()}"
    assert [r["name"] for r in json.loads(run(*args, env={"GITLAB_TOKEN": TOKEN}).stdout)] == ["l1", "l2", "l3"]


def test_cleanup_dry_run_then_bulk_endpoint(registry_open, store, gitlab_api):
    # Config dates say the opposite of the push times: GitLab's created_at must win.
    push_tags(registry_open, store, "glcli/bulk/app", ["v1", "v2", "v3", "stable", "latest"],
              created="2999-01-01T00:00:00Z")
    push_tags(registry_open, store, "glcli/bulk/app", ["fresh"], created="1970-01-01T00:00:00Z")
    api = gitlab_api({"glcli/bulk": 24})
    api.add_access_token(TOKEN)
    for days, tag in [(100, "v3"), (200, "v2"), (300, "v1"), (400, "stable"), (500, "latest")]:
        api.set_created("glcli/bulk/app", tag, NOW - dt.timedelta(days=days))
    repo = f"{registry_open.host}/glcli/bulk/app"
    args = ["cleanup", repo, "--gitlab-url", api.url, "--name-regex-delete", ".*", "--name-regex-keep", "stable",
            "--keep-n", "1", "--older-than", "90d"]
    dry = run(*args, "--dry-run", env={"GITLAB_TOKEN": TOKEN})
    # latest: never; stable: kept by regex; fresh: the newest (and young); v3, v2, v1: pushed > 90 days ago
    assert [line.split(" (")[0] for line in dry.stdout.splitlines()] == [
        f"Would delete {repo}:v3", f"Would delete {repo}:v2", f"Would delete {repo}:v1"]
    assert "ages from GitLab's created_at" in dry.stderr
    assert _deletes(api) == [] and len(registry_tags(registry_open, "glcli/bulk/app")) == 6

    real = run(*args, env={"GITLAB_TOKEN": TOKEN})
    assert [line.split(" (")[0] for line in real.stdout.splitlines()] == [
        f"Scheduled deletion of {repo}:v3", f"Scheduled deletion of {repo}:v2", f"Scheduled deletion of {repo}:v1"]
    bulk = [c for c in api.calls if c.method == "DELETE"]
    assert [c.path.rsplit("/", 1)[-1] for c in bulk] == ["tags"]
    assert bulk[0].params == {"name_regex_delete": ".*", "name_regex_keep": "stable", "keep_n": "1",
                              "older_than": "90d"}
    assert registry_tags(registry_open, "glcli/bulk/app") == ["fresh", "latest", "stable"]


def test_cleanup_tag_by_tag_when_gitlab_cannot_compute_it(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glcli/each/app", ["a1", "a2", "keep1", "b1"])
    api = gitlab_api({"glcli/each": 25})
    api.add_access_token(TOKEN)
    for tag in ("a1", "a2", "keep1", "b1"):
        api.set_created("glcli/each/app", tag, NOW - dt.timedelta(days=30))
    repo = f"{registry_open.host}/glcli/each/app"
    # A lookahead: Python has it, GitLab's RE2 does not.
    result = run("cleanup", repo, "--gitlab-url", api.url, "--name-regex-delete", "(?!keep).*", "--older-than",
                 "1d", env={"GITLAB_TOKEN": TOKEN})
    assert "RE2" in result.stderr
    assert sorted(p.rsplit("/", 1)[-1] for p in _deletes(api)) == ["a1", "a2", "b1"]
    assert registry_tags(registry_open, "glcli/each/app") == ["keep1"]


def test_bulk_once_an_hour_then_tag_by_tag(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glcli/hour/app", ["x1", "x2"])
    api = gitlab_api({"glcli/hour": 26})
    api.add_access_token(TOKEN)
    repo = f"{registry_open.host}/glcli/hour/app"
    args = ["cleanup", repo, "--gitlab-url", api.url, "--project", "glcli/hour", "--name-regex-delete", "x.*",
            "--older-than", "1h"]
    api.set_created("glcli/hour/app", "x1", NOW - dt.timedelta(hours=2))
    run(*args, env={"GITLAB_TOKEN": TOKEN})
    assert registry_tags(registry_open, "glcli/hour/app") == ["x2"]
    api.set_created("glcli/hour/app", "x2", NOW - dt.timedelta(hours=2))
    second = run(*args, env={"GITLAB_TOKEN": TOKEN})
    assert "at most once an hour" in second.stderr
    assert [c.status for c in api.calls if c.method == "DELETE"] == [202, 400, 200]
    assert registry_tags(registry_open, "glcli/hour/app") == []


def _one_line_error(result) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("wharfie: error")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert TOKEN not in result.stdout + result.stderr and JOB_TOKEN not in result.stdout + result.stderr
    return errors[0]


def test_errors_in_gitlabs_words_never_with_the_token(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glcli/err/app", ["e1"])
    api = gitlab_api({"glcli/err": 27, "glcli/other": 28})
    api.add_access_token(TOKEN, scopes=("read_api",))
    api.add_job_token(JOB_TOKEN, "glcli/other")
    repo = f"{registry_open.host}/glcli/err/app"
    api.set_created("glcli/err/app", "e1", NOW - dt.timedelta(days=3))
    policy = ["--name-regex-delete", ".*", "--older-than", "1d"]

    bad = run_wharfie("cleanup", repo, "--gitlab-url", api.url, *policy, env={"GITLAB_TOKEN": TOKEN + "x"})
    assert re.fullmatch(r"wharfie: error: GitLab API refused GET /api/v4/projects/glcli%2Ferr%2Fapp/registry/"
                        r"repositories with PRIVATE-TOKEN from \$GITLAB_TOKEN: 401 Unauthorized; the access token "
                        r"was not accepted: .*", _one_line_error(bad))

    scope = run_wharfie("cleanup", repo, "--gitlab-url", api.url, "--gitlab-token", TOKEN, *policy)
    line = _one_line_error(scope)
    assert "403 insufficient_scope: The request requires higher privileges than provided by the access token;" in line
    assert "PRIVATE-TOKEN from --gitlab-token" in line and "api scope" in line
    assert registry_tags(registry_open, "glcli/err/app") == ["e1"]

    job = run_wharfie("tags", "ls", repo, "--project", "27", env={"CI_API_V4_URL": api.url,
                                                                   "CI_JOB_TOKEN": JOB_TOKEN})
    line = _one_line_error(job)
    assert "403 Forbidden" in line and "JOB-TOKEN from $CI_JOB_TOKEN" in line and "its own project" in line

    ok = run_wharfie("tags", "ls", repo, "--gitlab-url", api.url, "--gitlab-token", TOKEN)
    assert ok.returncode == 0 and "e1" in ok.stdout
    assert TOKEN not in ok.stdout + ok.stderr


def test_which_api_a_job_uses_and_no_token_in_clear(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glcli/which/app", ["w1"])
    api = gitlab_api({"glcli/which": 29})
    api.add_job_token(JOB_TOKEN, "glcli/which")
    repo = f"{registry_open.host}/glcli/which/app"
    job = {"CI_API_V4_URL": api.url, "CI_JOB_TOKEN": JOB_TOKEN, "CI_PROJECT_ID": "29"}
    # The job's registry: GitLab's API.
    mine = run("tags", "ls", repo, env={**job, "CI_REGISTRY": registry_open.host})
    assert "Using GitLab's REST API" in mine.stderr and mine.stdout.split()[4] == "w1"
    # Another registry than the job's: that registry's own API, and GitLab is not asked.
    api.reset()
    other = run("tags", "ls", repo, env={**job, "CI_REGISTRY": "registry.gitlab.example.com"})
    assert other.stdout.split() == ["w1"] and api.calls == []
    assert f"Using the registry API of {registry_open.host}: names only ({registry_open.host} is not this " \
           "job's registry $CI_REGISTRY)" in other.stderr
    forced = run("tags", "ls", repo, "--registry-api", env={**job, "CI_REGISTRY": registry_open.host})
    assert "(--registry-api)" in forced.stderr and api.calls == []
    clear = run("tags", "ls", repo, "--gitlab-url", "http://gitlab.example.com/api/v4", ok=False,
                env={"GITLAB_TOKEN": TOKEN})
    assert clear.exit_code == 2 and "the token would travel in clear" in clear.output
    assert TOKEN not in clear.output
