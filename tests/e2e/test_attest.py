"""build --sbom --provenance end to end: attached as referrers in the real registry, read back by other tools.

The SBOM is validated by spdx-tools and compared with what dpkg-query reads from the image's
rootfs as skopeo and umoci unpack it; the referrers are read back with skopeo through the
fallback tag (docker-registry has no referrers API) and with wharfie's own commands.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from fixtures.multibase import DPKG_INSTALLED, push_package_base
from fixtures.readback import read_back, run_wharfie, skopeo_inspect
from fixtures.registry import Registry

pytestmark = pytest.mark.slow

COMMIT = "0123456789abcdef0123456789abcdef01234567"
SECRET = "s3cr3t-value-9f2c"
GITLAB = {"GITLAB_CI": "true", "CI_COMMIT_SHA": COMMIT, "CI_JOB_URL": "https://gitlab.example/g/p/-/jobs/77",
          "CI_PIPELINE_ID": "4242", "CI_RUNNER_ID": "12", "CI_PROJECT_URL": "https://gitlab.example/g/p",
          "MY_SECRET": SECRET}
DOCKERFILE = """\
FROM {base}
ARG GREETING=hello
ARG API_TOKEN
ARG VERSION
RUN printf '\\nPackage: hello\\nStatus: install ok installed\\nArchitecture: amd64\\nVersion: 2.10-3\\nMaintainer: Santiago Vila <sanvila@debian.org>\\nDescription: greets\\n' >> /var/lib/dpkg/status \\
 && rm -rf /usr/local/lib/python3.11/site-packages/Foo_Bar-1.0.egg-info
COPY app.txt /app/
"""


@pytest.fixture(scope="module")
def package_base(registry_open: Registry) -> str:
    return push_package_base(registry_open)


def _context(tmp_path: Path, base: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=base))
    (context / "app.txt").write_text("app\n")
    return context


def _build(context: Path, tmp_path: Path, dest: str, host: str, *extra: str):
    return run_wharfie("build", str(context), "-d", dest, "--insecure-registry", host, "--reproducible",
                       "--cache-dir", str(tmp_path / "cache"), "--digest-file", str(tmp_path / "digest"),
                       "--build-arg", "API_TOKEN=tok-12345678", "--build-arg", f"VERSION={SECRET}",
                       "--secret", "id=s,env=MY_SECRET", *extra, env=GITLAB)


def _dpkg_query(rootfs: Path) -> set[tuple[str, str, str]]:
    done = subprocess.run(["dpkg-query", "-W", "-f", "${Package}\t${Version}\t${Architecture}\t${db:Status-Status}\n",
                           f"--admindir={rootfs}/var/lib/dpkg"], capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    return {(name, version, arch) for name, version, arch, status in rows if status == "installed"}


def _purls(document: dict) -> dict[str, str]:
    return {p["name"]: p["externalRefs"][0]["referenceLocator"] for p in document["packages"]}


def test_sbom_and_provenance_attached_checked_and_read_back(registry_open: Registry, package_base: str,
                                                            tmp_path: Path) -> None:
    host = registry_open.host
    dest = f"{host}/e2e/attest:v1"
    context = _context(tmp_path, package_base)
    sbom_file, prov_file = tmp_path / "sbom.spdx.json", tmp_path / "provenance.json"
    result = _build(context, tmp_path, dest, host, "--sbom-file", str(sbom_file), "--provenance-file",
                    str(prov_file))
    assert result.returncode == 0, result.stderr
    digest = (tmp_path / "digest").read_text()
    assert "rpm database /var/lib/rpm/rpmdb.sqlite found: rpm packages are not covered" in result.stderr

    # spdx-tools, an independent validator, accepts the document.
    validated = subprocess.run(["pyspdxtools", "-i", str(sbom_file)], capture_output=True, text=True, check=False)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    sbom = json.loads(sbom_file.read_text())
    assert sbom["spdxVersion"] == "SPDX-2.3" and "rpm" in sbom["comment"]

    # dpkg-query on the image as skopeo + umoci unpack it lists exactly the SBOM's status-file packages.
    image = read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"])
    from_dpkg = _dpkg_query(image.rootfs)
    assert ("hello", "2.10-3", "amd64") in from_dpkg  # installed by the build's RUN
    assert from_dpkg == DPKG_INSTALLED | {("hello", "2.10-3", "amd64")}
    by_id = {p["SPDXID"]: p for p in sbom["packages"]}
    deb_from_status = {(p["name"], p["versionInfo"], p["externalRefs"][0]["referenceLocator"].split("arch=")[1])
                       for p in sbom["packages"] if p.get("sourceInfo") == "read from /var/lib/dpkg/status"}
    assert deb_from_status == from_dpkg

    purls = _purls(sbom)
    assert purls["jq"] == "pkg:deb/debian/jq@1.6-2.1?arch=amd64"
    assert purls["base-files"] == "pkg:deb/debian/base-files@12.4%2Bdeb12u5?arch=amd64"  # from status.d/
    assert purls["musl"] == "pkg:apk/debian/musl@1.2.4-r2?arch=x86_64"  # os-release says debian: it wins
    assert purls["requests"] == "pkg:pypi/requests@2.28.1"
    assert purls["legacy-thing"] == "pkg:pypi/legacy-thing@0.1"
    assert "Foo_Bar" not in purls, "deleted by the RUN step (a whiteout): not in the image any more"
    assert "oldpkg" not in purls, "config-files only: not installed"
    jq = next(p for p in sbom["packages"] if p["name"] == "jq")
    assert jq["supplier"] == "Person: Debian Med Packaging Team (debian-med-packaging@lists.alioth.debian.org)"
    requests = next(p for p in sbom["packages"] if p["name"] == "requests")
    assert requests["supplier"] == "Person: Kenneth Reitz (me@kennethreitz.org)" and requests["versionInfo"] == "2.28.1"

    # The image and its base, with their digests, and the relationships SPDX expects.
    base_digest = skopeo_inspect(package_base, ["--tls-verify=false"])["Digest"]
    assert by_id["SPDXRef-Image"]["versionInfo"] == digest
    assert by_id["SPDXRef-BaseImage"]["checksums"] == [{"algorithm": "SHA256", "checksumValue": base_digest[7:]}]
    relations = {(r["spdxElementId"], r["relationshipType"], r["relatedSpdxElement"]) for r in sbom["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image") in relations
    assert ("SPDXRef-Image", "DESCENDANT_OF", "SPDXRef-BaseImage") in relations
    contained = {r[2] for r in relations if r[1] == "CONTAINS"}
    assert contained == {p["SPDXID"] for p in sbom["packages"]} - {"SPDXRef-Image", "SPDXRef-BaseImage"}

    # Provenance: subject, parameters without secrets, dependencies by digest, the GitLab job.
    statement = json.loads(prov_file.read_text())
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
    assert statement["subject"] == [{"name": f"{host}/e2e/attest", "digest": {"sha256": digest[7:]}}]
    definition = statement["predicate"]["buildDefinition"]
    params = definition["externalParameters"]
    assert params["buildArgs"] == {}  # API_TOKEN by its name, VERSION because it holds the --secret's value
    assert params["dockerfile"]["path"] == "Dockerfile"
    assert params["dockerfile"]["digest"]["sha256"] == hashlib.sha256((context / "Dockerfile").read_bytes()).hexdigest()
    assert params["platform"] == "linux/amd64" and params["source"]["commit"] == COMMIT
    deps = definition["resolvedDependencies"]
    assert {"digest": {"gitCommit": COMMIT}, "uri": "git+https://gitlab.example/g/p"} in deps
    base_dep = next(d for d in deps if d.get("annotations", {}).get("role") == "base")
    assert base_dep["digest"] == {"sha256": base_digest[7:]} and base_dep["name"] == f"{host}/library/pkgbase"
    run = statement["predicate"]["runDetails"]
    assert run["builder"]["version"]["wharfie"] and run["builder"]["id"].startswith("https://wharfie.io/builder@v")
    assert run["metadata"]["invocationId"] == GITLAB["CI_JOB_URL"]
    assert run["metadata"]["gitlabCI"]["pipelineId"] == "4242" and run["metadata"]["gitlabCI"]["runnerId"] == "12"
    for text in (prov_file.read_text(), sbom_file.read_text()):
        assert SECRET not in text and "tok-12345678" not in text

    # Attached through the fallback tag (no referrers API here), read back by skopeo...
    index = skopeo_inspect(f"{host}/e2e/attest:sha256-{digest[7:]}", ["--tls-verify=false", "--raw"])
    assert [m["artifactType"] for m in index["manifests"]] == ["application/spdx+json", "application/vnd.in-toto+json"]
    # ... and by wharfie's commands.
    flags = ("--insecure-registry", host)
    shown = run_wharfie("sbom", dest, *flags)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == sbom
    shown = run_wharfie("provenance", dest, *flags)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == statement
    inspected = run_wharfie("inspect", dest, *flags)
    assert inspected.returncode == 0, inspected.stderr
    referrers = json.loads(inspected.stdout)["Referrers"]
    assert sorted(r["ArtifactType"] for r in referrers) == ["application/spdx+json", "application/vnd.in-toto+json"]

    # The image's own manifest is what a build without attestations makes.
    plain_dest = f"{host}/e2e/attest-plain:v1"
    plain = run_wharfie("build", str(context), "-d", plain_dest, "--insecure-registry", host, "--reproducible",
                        "--cache-dir", str(tmp_path / "cache"), "--digest-file", str(tmp_path / "plain-digest"),
                        "--build-arg", "API_TOKEN=tok-12345678", "--build-arg", f"VERSION={SECRET}")
    assert plain.returncode == 0, plain.stderr
    assert (tmp_path / "plain-digest").read_text() == digest
    assert skopeo_inspect(dest, ["--tls-verify=false"])["Digest"] == digest


def test_sbom_of_an_image_without_one_is_a_one_line_error(registry_open: Registry, package_base: str) -> None:
    result = run_wharfie("sbom", package_base, "--insecure-registry", registry_open.host)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("wharfie: error: no SBOM is attached to") and "Traceback" not in result.stderr
