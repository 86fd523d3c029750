"""OCI referrers: the fallback tag against the real docker-registry (no referrers API), the API path scripted."""

from __future__ import annotations

import json

import httpx
import pytest
from registry_helpers import build_image, skopeo_inspect

from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Descriptor, Index
from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.progress import NullProgress
from registry.push import BytesBlob, push_blobs
from registry.reference import parse_reference
from registry.referrers import (
    Artifact,
    artifact_manifest,
    fetch_artifact,
    list_referrers,
    push_referrer,
    referrers_api,
    referrers_tag,
)

SBOM = Artifact(mt.SPDX_JSON, b'{"spdxVersion":"SPDX-2.3"}', {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"})
PROV = Artifact(mt.IN_TOTO_JSON, b'{"_type":"https://in-toto.io/Statement/v1"}')


def _push_image(client: RegistryClient, store, ref: str):
    image = build_image(store, [{"hello": b"world"}])
    client.push_image([parse_reference(ref)], image.manifest_raw, image.media_type, image.config_raw, image.layers)
    return image, Descriptor(image.media_type, image.digest, len(image.manifest_raw))


def test_fallback_tag_on_a_registry_without_the_api(registry_open, make_client, store):
    client = make_client(registry_open)
    ref = f"{registry_open.host}/referrers/fallback:v1"
    image, subject = _push_image(client, store, ref)
    repo = parse_reference(ref)
    assert referrers_api(client.session, repo, image.digest) is None  # docker-registry 2.8: 404 page not found

    # Another tool attached something first: its entry must survive our read-modify-write.
    foreign = Artifact("application/vnd.example.sig", b"signature")
    raw = artifact_manifest(foreign, subject)
    push_blobs(client.session, repo.repo_ref, [BytesBlob(b"{}"), BytesBlob(foreign.payload)], [], NullProgress())
    client.put_manifest(repo.with_digest(Digest.of_bytes(raw)), raw, mt.OCI_MANIFEST)
    foreign_desc = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(raw), len(raw), artifact_type=foreign.artifact_type)
    tag = repo.with_tag(referrers_tag(image.digest))
    client.put_manifest(tag, Index(mt.OCI_INDEX, (foreign_desc,)).to_bytes(), mt.OCI_INDEX)

    sbom = push_referrer(client.session, repo, subject, SBOM)
    prov = push_referrer(client.session, repo, subject, PROV)
    assert push_referrer(client.session, repo, subject, PROV) == prov  # idempotent: no duplicate entry

    # Read back with skopeo: the tag sha256-HEX is an index listing all three, with their artifact types.
    index = skopeo_inspect(registry_open, f"{tag}", raw=True)
    assert index["mediaType"] == mt.OCI_INDEX
    listed = [(m["digest"], m.get("artifactType")) for m in index["manifests"]]
    assert listed == [(str(foreign_desc.digest), "application/vnd.example.sig"), (str(sbom.digest), mt.SPDX_JSON),
                      (str(prov.digest), mt.IN_TOTO_JSON)]
    assert index["manifests"][1]["annotations"] == dict(SBOM.annotations)  # copied from the artifact manifest
    artifact = skopeo_inspect(registry_open, f"{repo.repo_ref.with_digest(sbom.digest)}", raw=True)
    assert artifact["subject"]["digest"] == str(image.digest)
    assert artifact["artifactType"] == mt.SPDX_JSON and artifact["config"]["mediaType"] == mt.OCI_EMPTY

    # The image itself is untouched.
    assert skopeo_inspect(registry_open, ref)["Digest"] == str(image.digest)

    found = list_referrers(client.session, repo, image.digest, mt.SPDX_JSON)
    assert [d.digest for d in found] == [sbom.digest]
    manifest, payload = fetch_artifact(client.session, repo, found[0])
    assert payload == SBOM.payload and manifest.subject is not None and manifest.subject.digest == image.digest
    assert len(list_referrers(client.session, repo, image.digest)) == 3


def test_no_referrers_is_an_empty_list(registry_open, make_client, store):
    client = make_client(registry_open)
    ref = f"{registry_open.host}/referrers/none:v1"
    image, _ = _push_image(client, store, ref)
    assert list_referrers(client.session, parse_reference(ref), image.digest) == []


def test_a_foreign_manifest_under_the_referrers_tag_is_left_alone(registry_open, make_client, store):
    client = make_client(registry_open)
    ref = f"{registry_open.host}/referrers/squatted:v1"
    image, subject = _push_image(client, store, ref)
    repo = parse_reference(ref)
    client.put_manifest(repo.with_tag(referrers_tag(image.digest)), image.manifest_raw, image.media_type)
    with pytest.raises(WharfieError, match="not the image index of referrers"):
        push_referrer(client.session, repo, subject, SBOM)
    assert skopeo_inspect(registry_open, f"{repo.with_tag(referrers_tag(image.digest))}")["Digest"] == \
        str(image.digest)


# -- the referrers API, scripted ------------------------------------------------------------------------

SUBJECT = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(b"image"), 5)


def _scripted(handler) -> RegistryClient:
    return RegistryClient(RegistryOptions(use_docker_config=False, backoff_base=0),
                          transport=httpx.MockTransport(handler))


def _log_line(request: httpx.Request) -> str:
    path = request.url.path.replace(str(SUBJECT.digest), "SUBJECT").replace(SUBJECT.digest.hex, "HEX")
    return f"{request.method} {path}"


def _index(*descriptors: Descriptor) -> httpx.Response:
    return httpx.Response(200, content=Index(mt.OCI_INDEX, descriptors).to_bytes(),
                          headers={"Content-Type": mt.OCI_INDEX})


def _blob_and_manifest_answers(request: httpx.Request, subject_header: bool) -> httpx.Response | None:
    if request.method == "HEAD":
        return httpx.Response(200)  # blobs already there
    if request.method == "PUT" and "/manifests/" in request.url.path:
        headers = {"OCI-Subject": str(SUBJECT.digest)} if subject_header else {}
        return httpx.Response(201, headers=headers)
    return None


@pytest.mark.parametrize("subject_header", [True, False])
def test_a_registry_with_the_api_gets_no_fallback_tag(subject_header):
    log: list[str] = []
    artifact_desc: list[Descriptor] = []

    def handler(request: httpx.Request) -> httpx.Response:
        log.append(_log_line(request))
        answer = _blob_and_manifest_answers(request, subject_header)
        if answer is not None:
            return answer
        if request.url.path.endswith("/referrers/" + str(SUBJECT.digest)):
            return _index(*artifact_desc)
        return httpx.Response(404)

    with _scripted(handler) as client:
        pushed = push_referrer(client.session, parse_reference("reg.example/g/app"), SUBJECT, SBOM)
        artifact_desc.append(pushed)
        found = list_referrers(client.session, parse_reference("reg.example/g/app"), SUBJECT.digest, mt.SPDX_JSON)
    assert found == [pushed]
    assert not any("sha256-" in line for line in log), log  # the tag is never read nor written
    expected = ["HEAD /v2/g/app/blobs/" + str(Digest.of_bytes(b"{}")),
                "HEAD /v2/g/app/blobs/" + str(Digest.of_bytes(SBOM.payload)),
                f"PUT /v2/g/app/manifests/{pushed.digest}"]
    if not subject_header:
        expected.append("GET /v2/g/app/referrers/SUBJECT")  # no OCI-Subject: ask the API whether it exists
    assert sorted(log[:2]) == sorted(expected[:2]) and log[2:-1] == expected[2:]
    assert log[-1] == "GET /v2/g/app/referrers/SUBJECT"


def test_api_pages_are_followed_and_filtered_by_type():
    sig = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(b"sig"), 3, artifact_type="application/vnd.example.sig")
    sbom = Descriptor(mt.OCI_MANIFEST, Digest.of_bytes(b"sbom"), 4, artifact_type=mt.SPDX_JSON)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.params.get("page") == "2":
            return _index(sbom)
        response = _index(sig)
        response.headers["Link"] = f'</v2/g/app/referrers/{SUBJECT.digest}?page=2>; rel="next"'
        return response

    with _scripted(handler) as client:
        found = list_referrers(client.session, parse_reference("reg.example/g/app"), SUBJECT.digest, mt.SPDX_JSON)
    assert found == [sbom]
    assert len(seen) == 2 and "artifactType=application%2Fspdx%2Bjson" in seen[0]


def test_artifact_manifest_shape():
    document = json.loads(artifact_manifest(SBOM, SUBJECT))
    assert list(document) == ["schemaVersion", "mediaType", "artifactType", "config", "layers", "subject",
                              "annotations"]
    assert document["config"] == {"mediaType": mt.OCI_EMPTY, "size": 2,
                                  "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}
    assert document["layers"][0]["mediaType"] == mt.SPDX_JSON
    assert document["subject"] == {"mediaType": mt.OCI_MANIFEST, "digest": str(SUBJECT.digest), "size": 5}
