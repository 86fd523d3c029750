"""Each example pipeline of examples/gitlab-ci runs: its YAML read, its jobs' `script:` lines run (issue #12).

A pipeline is described by the variables GitLab would set (branch, tag,
merge request, schedule); `rules:` decide which jobs it holds; each job's
lines run in wharfie's image under podman with the job's environment
(runners.py), against the token-auth TLS registry with the job token and,
for cleanup, GitLab's API in front of it. Outcomes are read back from the
registry with skopeo as its admin.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable

import pytest
from job_bed import EXAMPLES, PROJECT_IDS, SHA, GitLabJobBed
from pipeline import Job, jobs_of, rule_matches
from runners import PodmanRunner

from fixtures.registry import Registry

BedMaker = Callable[..., GitLabJobBed]


def run_pipeline(bed: GitLabJobBed, runner: PodmanRunner,
                 **pipeline: str) -> list[tuple[Job, subprocess.CompletedProcess[str]]]:
    """Run every job of the example's pipeline in stage order; each must succeed."""
    variables = bed.variables(**pipeline)
    done = []
    for job in jobs_of(EXAMPLES / bed.example / ".gitlab-ci.yml", variables):
        result = runner.run(job, variables, bed)
        assert result.returncode == 0, f"job {job.name} failed {runner.where}:\n{result.stdout}\n{result.stderr}"
        assert bed.job_token not in result.stdout + result.stderr, "the job token is never printed"
        kept = [path for path in bed.builds.rglob("*") if path.is_file() and bed.job_token.encode() in path.read_bytes()]
        assert not kept, f"the job token written to the builds volume (artifacts, caches): {kept}"
        done.append((job, result))
    return done


def skopeo(registry: Registry, *args: str) -> subprocess.CompletedProcess[str]:
    flags = [f"--cert-dir={registry.cert_dir}", f"--creds={registry.username}:{registry.password}"]
    if args[0] == "copy":
        flags = [f"--dest-cert-dir={registry.cert_dir}", f"--dest-creds={registry.username}:{registry.password}",
                 "--src-tls-verify=false"]
    return subprocess.run(["skopeo", args[0], *flags, *args[1:]], capture_output=True, text=True, check=False)


def tags(registry: Registry, repository: str) -> dict[str, str]:
    listed = skopeo(registry, "list-tags", f"docker://{registry.host}/{repository}")
    if listed.returncode != 0:
        return {}
    return {tag: json.loads(skopeo(registry, "inspect", f"docker://{registry.host}/{repository}:{tag}").stdout)["Digest"]
            for tag in json.loads(listed.stdout)["Tags"]}


def write_project(bed: GitLabJobBed, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = bed.project_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_every_example_is_tested_and_every_file_parses() -> None:
    examples = sorted(p.parent.name for p in EXAMPLES.glob("*/.gitlab-ci.yml"))
    assert examples == sorted(PROJECT_IDS)
    tested = {name.removeprefix("test_").replace("_", "-") for name in globals() if name.startswith("test_")}
    assert set(examples) <= tested, set(examples) - tested
    for example in examples:
        text = (EXAMPLES / example / ".gitlab-ci.yml").read_text()
        assert "name: $WHARFIE_IMAGE" in text and 'entrypoint: [""]' in text, example
        jobs_of(EXAMPLES / example / ".gitlab-ci.yml", {})  # parses, and every rules:if is understood


@pytest.mark.parametrize(("expression", "env", "expected"), [
    ("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", {"CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main"}, True),
    ("$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", {"CI_DEFAULT_BRANCH": "main"}, False),
    ('$CI_PIPELINE_SOURCE == "schedule"', {"CI_PIPELINE_SOURCE": "schedule"}, True),
    ('$CI_PIPELINE_SOURCE != "schedule"', {"CI_PIPELINE_SOURCE": "push"}, True),
    ("$CI_COMMIT_TAG =~ /^v?[0-9]+\\.[0-9]+\\.[0-9]+/", {"CI_COMMIT_TAG": "v1.2.3"}, True),
    ("$CI_COMMIT_TAG =~ /^v?[0-9]+\\.[0-9]+\\.[0-9]+/", {"CI_COMMIT_TAG": "nightly"}, False),
    ("$CI_COMMIT_TAG =~ /^v?[0-9]+\\.[0-9]+\\.[0-9]+/", {}, False),
    ("$CI_COMMIT_BRANCH", {"CI_COMMIT_BRANCH": "x"}, True),
    ("$CI_COMMIT_BRANCH", {"CI_COMMIT_BRANCH": ""}, False),
])
def test_rules_evaluation(expression: str, env: dict[str, str], expected: bool) -> None:
    assert rule_matches(expression, env) is expected


@pytest.mark.slow  # the jobs run in wharfie's image (its build, once per session, takes about a minute)
def test_default_branch(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("default-branch")
    write_project(bed, {"Dockerfile": f"FROM {busybox_ref}\nCOPY app.txt /\n", "app.txt": "app\n"})
    assert not jobs_of(EXAMPLES / bed.example / ".gitlab-ci.yml", bed.variables(CI_COMMIT_BRANCH="topic"))
    [(_job, result)] = run_pipeline(bed, job_runner, CI_COMMIT_BRANCH="main", CI_COMMIT_REF_SLUG="main")
    pushed = tags(bed.registry, bed.project_path)
    assert sorted(pushed) == sorted([SHA, "latest"]) and len(set(pushed.values())) == 1
    assert f"pushed {bed.image}:latest@{pushed['latest']}" in result.stdout


@pytest.mark.slow
def test_merge_request(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("merge-request")
    write_project(bed, {"Dockerfile": f"FROM {busybox_ref}\nCOPY app.txt /\n", "app.txt": "app\n"})
    assert not jobs_of(EXAMPLES / bed.example / ".gitlab-ci.yml", bed.variables(CI_COMMIT_BRANCH="main"))
    [(_job, result)] = run_pipeline(bed, job_runner, CI_PIPELINE_SOURCE="merge_request_event",
                                    CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="fix/thing", CI_COMMIT_REF_SLUG="fix-thing")
    assert "built, not pushed (--push pushes it)" in result.stderr
    digest = (bed.project_dir / "image-digest.txt").read_text()
    assert digest.startswith("sha256:") and digest in result.stdout
    assert tags(bed.registry, bed.project_path) == {}


@pytest.mark.slow
@pytest.mark.parametrize(("tag", "expected"), [("v1.4.2", ["1", "1.4", "1.4.2", "latest"]),
                                               ("v2.0.0-rc.1", ["2.0.0-rc.1"])])
def test_release_tags(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str, tag: str, expected: list[str]) -> None:
    bed = job_bed("release-tags", f"release-{tag}")
    write_project(bed, {"Dockerfile": f"FROM {busybox_ref}\nCOPY app.txt /\n", "app.txt": "app\n"})
    assert not jobs_of(EXAMPLES / bed.example / ".gitlab-ci.yml", bed.variables(CI_COMMIT_TAG="nightly"))
    run_pipeline(bed, job_runner, CI_COMMIT_TAG=tag)
    pushed = tags(bed.registry, bed.project_path)
    assert sorted(pushed) == sorted(expected)
    digest = pushed[expected[0]]
    released = (bed.project_dir / "released.txt").read_text().splitlines()
    assert sorted(released) == sorted(f"{bed.image}:{t}@{digest}" for t in expected)


@pytest.mark.slow
def test_remote_cache(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("remote-cache")
    write_project(bed, {"Dockerfile": f"FROM {busybox_ref}\nRUN echo built > /built.txt\nCOPY app.txt /\n",
                        "app.txt": "app\n"})
    [(_job, first)] = run_pipeline(bed, job_runner, CI_COMMIT_BRANCH="topic", CI_COMMIT_REF_SLUG="topic")
    assert "cache hit" not in first.stderr
    assert "isolation: sandbox, rootless" in first.stderr, "the job container allows user namespaces: RUN uses one"
    assert tags(bed.registry, f"{bed.project_path}/cache"), "steps stored in $CI_REGISTRY_IMAGE/cache"
    [(_job, second)] = run_pipeline(bed, job_runner, CI_COMMIT_BRANCH="topic", CI_COMMIT_REF_SLUG="topic",
                                    CI_COMMIT_SHA="1" * 40)
    assert second.stderr.count("cache hit") == 2, second.stderr
    layers = [json.loads(skopeo(bed.registry, "inspect", f"docker://{bed.image}:{tag}").stdout)["Layers"]
              for tag in (SHA, "1" * 40)]
    assert layers[0] == layers[1], "a fully cached rebuild has the same layers (only its dates differ)"


@pytest.mark.slow
def test_several_images(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("several-images")
    write_project(bed, {"api/Dockerfile": f"FROM {busybox_ref}\nCOPY api.txt /\n", "api/api.txt": "api\n",
                        "worker/Dockerfile": "FROM scratch\nCOPY worker.txt /\n", "worker/worker.txt": "worker\n"})
    done = run_pipeline(bed, job_runner, CI_COMMIT_BRANCH="main", CI_COMMIT_REF_SLUG="main")
    assert [job.name for job, _ in done] == ["api", "worker"]
    api, worker = tags(bed.registry, f"{bed.project_path}/api"), tags(bed.registry, f"{bed.project_path}/worker")
    assert sorted(api) == sorted(worker) == sorted([SHA, "latest"])
    assert api[SHA] != worker[SHA]


@pytest.mark.slow
def test_multi_arch(job_runner: PodmanRunner, job_bed: BedMaker) -> None:
    bed = job_bed("multi-arch")
    write_project(bed, {"Dockerfile": "FROM scratch\nCOPY app.txt /\n", "app.txt": "app\n"})
    done = run_pipeline(bed, job_runner, CI_COMMIT_BRANCH="main", CI_COMMIT_REF_SLUG="main")
    assert [job.name for job, _ in done] == ["build: [amd64]", "build: [arm64]", "manifest"]
    index = json.loads(skopeo(bed.registry, "inspect", "--raw", f"docker://{bed.image}:{SHA}").stdout)
    platforms = sorted(f"{m['platform']['os']}/{m['platform']['architecture']}" for m in index["manifests"])
    assert platforms == ["linux/amd64", "linux/arm64"]
    per_arch = tags(bed.registry, bed.project_path)
    assert {m["digest"] for m in index["manifests"]} == {per_arch[f"{SHA}-amd64"], per_arch[f"{SHA}-arm64"]}


@pytest.mark.slow
def test_scheduled_cleanup(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("scheduled-cleanup")
    names = ["latest", "v1.0.0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"]
    for name in names:
        copied = skopeo(bed.registry, "copy", "--quiet", f"docker://{busybox_ref}", f"docker://{bed.image}:{name}")
        assert copied.returncode == 0, copied.stderr
    now = dt.datetime.now(dt.UTC)
    for name, days in (("t1", 90), ("t2", 60), ("t3", 40), ("v1.0.0", 400), ("latest", 400)):
        bed.api.set_created(bed.project_path, name, now - dt.timedelta(days=days))
    assert not jobs_of(EXAMPLES / bed.example / ".gitlab-ci.yml", bed.variables(CI_COMMIT_BRANCH="main"))
    run_pipeline(bed, job_runner, CI_PIPELINE_SOURCE="schedule", CI_COMMIT_BRANCH="main")
    # The 5 newest of t1..t7 stay (t3..t7), latest and the version always; t1 and t2 are old: gone.
    assert sorted(tags(bed.registry, bed.project_path)) == ["latest", "t3", "t4", "t5", "t6", "t7", "v1.0.0"]
    assert {c.token_header for c in bed.api.calls} == {"JOB-TOKEN"}


@pytest.mark.slow
def test_deploy_token_pull(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("deploy-token-pull")
    copied = skopeo(bed.registry, "copy", "--quiet", f"docker://{busybox_ref}", f"docker://{bed.image}:{SHA}")
    assert copied.returncode == 0, copied.stderr
    [(_job, result)] = run_pipeline(bed, job_runner, CI_COMMIT_BRANCH="main")
    archive = bed.project_dir / "image.tar"
    inspected = subprocess.run(["skopeo", "inspect", f"docker-archive:{archive}"], capture_output=True, text=True,
                               check=False)
    assert inspected.returncode == 0, inspected.stderr
    expected = json.loads(skopeo(bed.registry, "inspect", "--config", f"docker://{bed.image}:{SHA}").stdout)
    assert json.loads(inspected.stdout)["Layers"] == expected["rootfs"]["diff_ids"]
    assert bed.deploy_password not in result.stdout + result.stderr


@pytest.mark.slow
def test_from_kaniko(job_runner: PodmanRunner, job_bed: BedMaker, busybox_ref: str) -> None:
    bed = job_bed("from-kaniko", private_ca="kaniko")  # no SSL_CERT_FILE: the CA only in /kaniko/ssl/certs
    write_project(bed, {"Dockerfile": f"FROM {busybox_ref}\nRUN echo kaniko > /made\n"})
    assert not jobs_of(EXAMPLES / bed.example / ".gitlab-ci.yml", bed.variables(CI_COMMIT_BRANCH="main"))
    run_pipeline(bed, job_runner, CI_COMMIT_TAG="v1.0.0")
    pushed = tags(bed.registry, bed.project_path)
    assert list(pushed) == ["v1.0.0"], "the job's --destination, not GitLab's conventions"
    config = json.loads(skopeo(bed.registry, "inspect", "--config", f"docker://{bed.image}:v1.0.0").stdout)
    assert "echo kaniko > /made" in config["history"][-1]["created_by"]

