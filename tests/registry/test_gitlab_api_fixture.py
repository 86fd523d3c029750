"""The GitLab API fixture itself, read with plain httpx: GitLab's documented paths, pages, statuses and headers.

It serves the real registry's content, so each answer is checked against what
the registry holds (digests pushed, tags it lists, times it stored them).
"""

from __future__ import annotations

import datetime as dt

import httpx
from gitlab_helpers import push_tags, registry_tags

PROJECT = "glfx/project"


def _get(api, path: str, token: str | None = "fx-token", header: str = "PRIVATE-TOKEN", **params: str):
    headers = {header: token} if token else {}
    return httpx.get(f"{api.url}{path}", params=params, headers=headers)


def test_repositories_and_tag_details_come_from_the_registry(registry_open, store, gitlab_api):
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    images = push_tags(registry_open, store, f"{PROJECT}/app", ["a", "b"])
    push_tags(registry_open, store, PROJECT, ["root"])
    push_tags(registry_open, store, "glfx/elsewhere", ["x"])
    api = gitlab_api({PROJECT: 7, "glfx/elsewhere": 8})
    api.add_access_token("fx-token")

    by_path = _get(api, "/projects/glfx%2Fproject/registry/repositories", tags_count="true")
    by_id = _get(api, "/projects/7/registry/repositories", tags_count="true", tags="true")
    assert by_path.status_code == by_id.status_code == 200
    repos = {r["path"]: r for r in by_id.json()}
    assert set(repos) == {PROJECT, f"{PROJECT}/app"}
    assert [r["path"] for r in by_path.json()] == [r["path"] for r in by_id.json()]
    app = repos[f"{PROJECT}/app"]
    assert (app["name"], app["tags_count"], app["project_id"]) == ("app", 2, 7)
    assert app["location"] == f"{registry_open.host}/{PROJECT}/app"
    assert [t["name"] for t in app["tags"]] == ["a", "b"]

    tags = _get(api, f"/projects/7/registry/repositories/{app['id']}/tags")
    assert [t["name"] for t in tags.json()] == ["a", "b"]
    detail = _get(api, f"/projects/7/registry/repositories/{app['id']}/tags/a").json()
    assert detail["digest"] == str(images["a"].digest)
    assert detail["total_size"] == sum(layer.size for layer in images["a"].layers)
    created = dt.datetime.fromisoformat(detail["created_at"])
    assert before <= created <= dt.datetime.now(dt.UTC)

    old = dt.datetime(2020, 5, 1, 12, 0, tzinfo=dt.UTC)
    api.set_created(f"{PROJECT}/app", "a", old)
    again = _get(api, f"/projects/7/registry/repositories/{app['id']}/tags/a").json()
    assert dt.datetime.fromisoformat(again["created_at"]) == old
    assert _get(api, f"/projects/7/registry/repositories/{app['id']}/tags/nope").json() == {
        "message": "404 Tag Not Found"}


def test_pagination_headers_and_links(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glfx/pages/app", ["t1", "t2", "t3", "t4", "t5"])
    api = gitlab_api({"glfx/pages": 9})
    api.add_access_token("fx-token")
    repo_id = _get(api, "/projects/9/registry/repositories").json()[0]["id"]
    first = _get(api, f"/projects/9/registry/repositories/{repo_id}/tags", per_page="2")
    assert [t["name"] for t in first.json()] == ["t1", "t2"]
    assert (first.headers["x-total"], first.headers["x-total-pages"], first.headers["x-next-page"]) == ("5", "3", "2")
    assert 'rel="next"' in first.headers["link"] and "page=2" in first.headers["link"].split(",")[0]
    last = _get(api, f"/projects/9/registry/repositories/{repo_id}/tags", per_page="2", page="3")
    assert [t["name"] for t in last.json()] == ["t5"]
    assert last.headers["x-next-page"] == "" and 'rel="next"' not in last.headers["link"]
    assert _get(api, f"/projects/9/registry/repositories/{repo_id}/tags").headers["x-per-page"] == "20"


def test_tokens_and_statuses(registry_open, store, gitlab_api):
    push_tags(registry_open, store, "glfx/auth/app", ["v1"])
    api = gitlab_api({"glfx/auth": 11, "glfx/other": 12})
    api.add_access_token("reader", scopes=("read_api",))
    api.add_job_token("job-11", "glfx/auth")
    api.add_job_token("job-12", "glfx/other")
    path = "/projects/11/registry/repositories"
    assert _get(api, path, token=None).json() == {"message": "404 Project Not Found"}
    wrong = _get(api, path, token="nobody")
    assert (wrong.status_code, wrong.json()) == (401, {"message": "401 Unauthorized"})
    assert _get(api, path, token="reader").status_code == 200
    assert _get(api, path, token="job-11", header="JOB-TOKEN").status_code == 200
    assert _get(api, path, token="job-12", header="JOB-TOKEN").status_code == 403  # another project's job
    assert _get(api, path, token="job-11", header="PRIVATE-TOKEN").status_code == 401  # wrong header kind
    repo_id = _get(api, path, token="reader").json()[0]["id"]
    refused = httpx.delete(f"{api.url}{path}/{repo_id}/tags/v1", headers={"PRIVATE-TOKEN": "reader"})
    assert refused.status_code == 403 and refused.json()["error"] == "insufficient_scope"
    assert registry_tags(registry_open, "glfx/auth/app") == ["v1"]
    assert [c.token_header for c in api.calls[:2]] == [None, "PRIVATE-TOKEN"]


def test_deletes_reach_the_registry(registry_open, store, gitlab_api):
    images = push_tags(registry_open, store, "glfx/del/app", ["keep", "one", "v1", "v2", "v3", "latest"])
    api = gitlab_api({"glfx/del": 13})
    api.add_access_token("fx-token")
    repo_id = _get(api, "/projects/13/registry/repositories").json()[0]["id"]
    base = f"{api.url}/projects/13/registry/repositories/{repo_id}/tags"
    assert httpx.delete(f"{base}/one", headers={"PRIVATE-TOKEN": "fx-token"}).status_code == 200
    assert "one" not in registry_tags(registry_open, "glfx/del/app")
    assert httpx.get(f"{registry_open.url}/v2/glfx/del/app/manifests/{images['v1'].digest}",
                     headers={"Accept": images["v1"].media_type}).status_code == 200

    now = dt.datetime.now(dt.UTC)
    for age, tag in enumerate(["v3", "v2", "v1", "keep", "latest"], start=1):
        api.set_created("glfx/del/app", tag, now - dt.timedelta(days=10 * age))
    form = {"name_regex_delete": "v.*|keep|latest", "name_regex_keep": "kee", "keep_n": "1", "older_than": "15d"}
    bulk = httpx.request("DELETE", base, data=form, headers={"PRIVATE-TOKEN": "fx-token"})
    assert bulk.status_code == 202
    # latest: never; keep: not matched by the anchored "kee"... so deleted; v3: the 1 newest kept; v2, v1: > 15d
    assert registry_tags(registry_open, "glfx/del/app") == ["latest", "v3"]
    twice = httpx.request("DELETE", base, data=form, headers={"PRIVATE-TOKEN": "fx-token"})
    assert twice.status_code == 400 and "once an hour" in twice.json()["message"]
