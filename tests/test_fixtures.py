"""The test bed checked with independent tools (skopeo, umoci, plain httpx), not with wharfie's own code.

If these pass, a failure elsewhere in the suite is wharfie's, not the bed's.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from fixtures.baseimage import BusyboxLayout, make_busybox_layout, push_busybox
from fixtures.proxy import Fault, FaultProxy, path_kind
from fixtures.registry import Registry
from fixtures.tls import TLSFiles, make_client_cert, make_tls
from fixtures.token_issuer import Account, TokenIssuer, libtrust_key_id

MakeProxy = Callable[[Registry | str], FaultProxy]


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], check=False, capture_output=True, text=True, timeout=60)


def inspect(
    registry: Registry, reference: str, *, creds: str | None = None, cert_dir: bool = True
) -> dict[str, object]:
    flags = (
        ["--tls-verify=false"] if registry.tls is None else ([f"--cert-dir={registry.cert_dir}"] if cert_dir else [])
    )
    if creds is not None:
        flags.append(f"--creds={creds}")
    result = skopeo("inspect", *flags, f"docker://{reference}")
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def bearer_challenge(header: str) -> dict[str, str]:
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


# -- busybox base image ------------------------------------------------------------


def test_busybox_layout_is_reproducible(tmp_path: Path, busybox_layout: BusyboxLayout) -> None:
    again = make_busybox_layout(tmp_path / "again")
    assert (again.digest, again.layer_digest, again.diff_id) == (
        busybox_layout.digest,
        busybox_layout.layer_digest,
        busybox_layout.diff_id,
    )
    blob = (busybox_layout.path / "blobs/sha256" / busybox_layout.layer_digest[7:]).read_bytes()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == busybox_layout.layer_digest
    assert {"sh", "ls", "cat", "sed", "awk", "tar"} <= set(busybox_layout.applets)


def test_skopeo_inspects_busybox_in_open_registry(
    registry_open: Registry, busybox_ref: str, busybox_layout: BusyboxLayout
) -> None:
    assert busybox_ref == f"{registry_open.host}/library/busybox:latest"
    info = inspect(registry_open, busybox_ref)
    assert info["Layers"] == [busybox_layout.layer_digest]
    assert info["Digest"] == busybox_layout.digest  # skopeo kept the manifest bytes
    assert info["Os"] == "linux" and info["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    ]
    assert registry_open.blob_exists(busybox_layout.layer_digest)


def test_umoci_unpacks_busybox_pulled_by_skopeo(tmp_path: Path, registry_open: Registry, busybox_ref: str) -> None:
    layout = tmp_path / "pulled"
    result = skopeo(
        "copy", "--quiet", *registry_open.skopeo_flags("src"), f"docker://{busybox_ref}", f"oci:{layout}:latest"
    )
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True
    )
    rootfs = bundle / "rootfs"
    assert (rootfs / "bin/busybox").stat().st_mode & 0o777 == 0o755
    assert (rootfs / "bin/sh").readlink() == Path("busybox")
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert "daemon:x:1:1:" in (rootfs / "etc/passwd").read_text()
    echoed = subprocess.run([str(rootfs / "bin/busybox"), "echo", "hello"], check=True, capture_output=True, text=True)
    assert echoed.stdout == "hello\n"


# -- htpasswd ------------------------------------------------------------------------


def test_htpasswd_registry_takes_right_credentials_only(registry_htpasswd: Registry) -> None:
    reference = push_busybox(registry_htpasswd, "ht/busybox")
    assert inspect(registry_htpasswd, reference, creds=f"{registry_htpasswd.username}:{registry_htpasswd.password}")
    for creds in (f"{registry_htpasswd.username}:wrong", None):
        flags = ["--tls-verify=false"] + ([f"--creds={creds}"] if creds else [])
        result = skopeo("inspect", *flags, f"docker://{reference}")
        assert result.returncode != 0
        assert "unauthorized" in result.stderr.lower() or "authentication required" in result.stderr.lower()


# -- token auth ----------------------------------------------------------------------


def test_token_flow_by_hand(registry_token: Registry, token_issuer: TokenIssuer) -> None:
    verify = registry_token.ssl_context()
    assert verify is not None
    with httpx.Client(verify=verify) as client:
        challenge = client.get(f"{registry_token.url}/v2/")
        assert challenge.status_code == 401
        params = bearer_challenge(challenge.headers["WWW-Authenticate"])
        assert params == {"realm": token_issuer.realm, "service": "container_registry"}
        before = token_issuer.request_count

        denied = client.get(params["realm"], params={"service": params["service"]}, auth=("wharfie", "nope"))
        assert denied.status_code == 401
        answer = client.get(
            params["realm"],
            params={"service": params["service"], "account": registry_token.username},
            auth=(registry_token.username or "", registry_token.password or ""),
        )
        assert answer.status_code == 200
        body = answer.json()
        assert body["token"] == body["access_token"] and body["expires_in"] == token_issuer.lifetime
        assert token_issuer.request_count == before + 2
        assert [r.status for r in token_issuer.requests[-2:]] == [401, 200]
        assert registry_token.password and all(registry_token.password not in repr(r) for r in token_issuer.requests)

        ok = client.get(f"{registry_token.url}/v2/", headers={"Authorization": f"Bearer {body['token']}"})
        assert ok.status_code == 200

    header = jwt.get_unverified_header(body["token"])
    signer = x509.load_pem_x509_certificate(token_issuer.signing_cert.read_bytes()).public_key()
    assert isinstance(signer, rsa.RSAPublicKey)
    assert header["kid"] == libtrust_key_id(signer) and len(header["kid"].split(":")) == 12
    claims = jwt.decode(body["token"], signer, algorithms=["RS256"], audience="container_registry")
    assert claims["iss"] == token_issuer.issuer and claims["sub"] == registry_token.username
    assert claims["access"] == []


@pytest.mark.parametrize("header", ["kid", "x5c"])
def test_registry_accepts_either_key_header(registry_token: Registry, token_issuer: TokenIssuer, header: str) -> None:
    token_issuer.header = header  # type: ignore[assignment]
    try:
        token = token_issuer.issue("someone", [])
    finally:
        token_issuer.header = "both"
    assert set(jwt.get_unverified_header(token)) - {"alg", "typ"} == {header}
    response = httpx.get(
        f"{registry_token.url}/v2/",
        headers={"Authorization": f"Bearer {token}"},
        verify=registry_token.ssl_context() or False,
    )
    assert response.status_code == 200


def test_registry_token_leeway_is_sixty_seconds(registry_token: Registry, token_issuer: TokenIssuer) -> None:
    """distribution 2.8.2 still takes a token 59 s past ``exp``: renewal tests cannot wait for a refusal."""

    def status(expired_for: int) -> int:
        token = token_issuer.issue("someone", [], now=time.time() - token_issuer.lifetime - expired_for)
        return httpx.get(
            f"{registry_token.url}/v2/",
            headers={"Authorization": f"Bearer {token}"},
            verify=registry_token.ssl_context() or False,
        ).status_code

    assert status(50) == 200
    assert status(70) == 401


def test_issuer_grants_requested_and_permitted_actions(
    token_issuer: TokenIssuer, token_accounts: dict[str, Account]
) -> None:
    reader = token_accounts["reader"]
    answer = httpx.get(
        token_issuer.realm,
        auth=(reader.username, reader.password),
        params={
            "service": "container_registry",
            "scope": ["repository:a/b:pull,push", "repository:c:push"],
        },
    )
    assert answer.status_code == 200
    assert httpx.get(token_issuer.realm, params={"service": "container_registry"}).status_code == 401  # anonymous
    claims = jwt.decode(answer.json()["token"], options={"verify_signature": False})
    assert claims["access"] == [
        {"type": "repository", "name": "a/b", "actions": ["pull"]},
        {"type": "repository", "name": "c", "actions": []},
    ]


def test_pull_only_user_cannot_push(
    registry_token: Registry,
    token_issuer: TokenIssuer,
    token_accounts: dict[str, Account],
    busybox_layout: BusyboxLayout,
) -> None:
    reference = push_busybox(registry_token, "team/app")
    reader, job = token_accounts["reader"], token_accounts["ci_job"]
    assert inspect(registry_token, reference, creds=reader.creds)["Layers"] == [busybox_layout.layer_digest]

    token_issuer.reset_counters()
    flags = [f"--dest-cert-dir={registry_token.cert_dir}"]
    denied = skopeo(
        "copy",
        "--quiet",
        *flags,
        f"--dest-creds={reader.creds}",
        busybox_layout.oci_ref,
        f"docker://{registry_token.host}/team/other:latest",
    )
    assert denied.returncode != 0
    assert any(
        r.user == "reader" and ("repository", "team/other", ("pull",)) in r.granted for r in token_issuer.requests
    )

    allowed = skopeo(
        "copy",
        "--quiet",
        *flags,
        f"--dest-creds={job.creds}",
        busybox_layout.oci_ref,
        f"docker://{registry_token.host}/group/project/app:1",
    )
    assert allowed.returncode == 0, allowed.stderr
    denied = skopeo(
        "copy",
        "--quiet",
        *flags,
        f"--dest-creds={job.creds}",
        busybox_layout.oci_ref,
        f"docker://{registry_token.host}/other-group/app:1",
    )
    assert denied.returncode != 0


# -- TLS -----------------------------------------------------------------------------


def test_tls_registry_needs_the_test_ca(registry_tls: Registry, busybox_layout: BusyboxLayout) -> None:
    assert registry_tls.url.startswith("https://") and registry_tls.ca_file is not None
    reference = push_busybox(registry_tls, "tls/busybox")
    assert inspect(registry_tls, reference)["Layers"] == [busybox_layout.layer_digest]
    result = skopeo("inspect", f"docker://{reference}")
    assert result.returncode != 0 and "certificate" in result.stderr


def test_mtls_registry_needs_a_client_certificate_of_the_test_ca(
    registry_mtls: Registry, tls_files: TLSFiles, busybox_layout: BusyboxLayout, tmp_path: Path
) -> None:
    reference = push_busybox(registry_mtls, "mtls/busybox")  # skopeo with the client cert in its cert dir
    assert inspect(registry_mtls, reference)["Layers"] == [busybox_layout.layer_digest]
    # The server CA alone (no client certificate) is refused, by skopeo and by plain httpx.
    without = skopeo("inspect", f"--cert-dir={tls_files.cert_dir}", f"docker://{reference}")
    assert without.returncode != 0 and "bad certificate" in without.stderr, without.stderr
    with pytest.raises(httpx.TransportError, match="BAD_CERTIFICATE"):
        httpx.get(f"{registry_mtls.url}/v2/", verify=ssl.create_default_context(cafile=str(tls_files.ca_cert)))
    # A client certificate from another CA is refused too: the registry checks who signed it.
    stranger = make_client_cert(make_tls(tmp_path / "other-ca"), tmp_path / "stranger")
    context = ssl.create_default_context(cafile=str(tls_files.ca_cert))
    context.load_cert_chain(str(stranger.cert), str(stranger.key))
    with pytest.raises(httpx.TransportError, match="BAD_CERTIFICATE"):
        httpx.get(f"{registry_mtls.url}/v2/", verify=context)
    assert httpx.get(f"{registry_mtls.url}/v2/", verify=registry_mtls.ssl_context()).status_code == 200


# -- registry lifecycle ----------------------------------------------------------------


def test_registry_restart_keeps_port_and_storage(tmp_path: Path, busybox_layout: BusyboxLayout) -> None:
    with Registry(tmp_path / "reg") as registry:
        reference = push_busybox(registry, "kept/busybox")
        host = registry.host
        registry.kill()
        assert not registry.running
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{registry.url}/v2/")
        registry.restart()
        assert registry.host == host
        assert inspect(registry, reference)["Layers"] == [busybox_layout.layer_digest]
    assert not registry.running


# -- fault proxy ---------------------------------------------------------------------


def test_proxy_counts_and_injects_a_503_once(
    registry_open: Registry, busybox_ref: str, busybox_layout: BusyboxLayout, fault_proxy: MakeProxy
) -> None:
    proxy = fault_proxy(registry_open)
    fault = proxy.fail("GET", r"/manifests/latest$", 503, headers={"Retry-After": "1"})
    manifest_url = f"{proxy.url}/v2/library/busybox/manifests/latest"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    first = httpx.get(manifest_url, headers=accept)
    assert first.status_code == 503 and first.headers["Retry-After"] == "1"
    assert first.json()["errors"][0]["code"] == "UNAVAILABLE"
    second = httpx.get(manifest_url, headers=accept)
    assert second.status_code == 200 and fault.fired == 1 and fault.seen == 2
    assert second.headers["Docker-Content-Digest"] == busybox_layout.digest

    blob = httpx.get(f"{proxy.url}/v2/library/busybox/blobs/{busybox_layout.layer_digest}")
    assert blob.status_code == 200 and len(blob.content) == busybox_layout.layer_size
    assert proxy.downloaded_bytes() == busybox_layout.layer_size
    assert proxy.count("GET", kind="manifest") == 2 and proxy.count(kind="blob") == 1

    pushed = skopeo(
        "copy",
        "--quiet",
        "--dest-tls-verify=false",
        busybox_layout.oci_ref,
        f"docker://{proxy.host}/proxied/busybox:latest",
    )
    assert pushed.returncode == 0, pushed.stderr
    # skopeo keeps a blob-info cache across runs (/var/lib/containers/cache): when a proxy of an earlier test
    # had this port, it knows the layer is in library/busybox there and mounts it instead of uploading it.
    mounted = [e for e in proxy.exchanges if e.method == "POST" and "mount=" in e.path and e.status == 201]
    assert proxy.uploaded_bytes() >= busybox_layout.layer_size or mounted
    assert proxy.count("PUT", kind="manifest") == 1


def test_proxy_fronts_a_tls_token_registry(
    registry_token: Registry, fault_proxy: MakeProxy, token_issuer: TokenIssuer
) -> None:
    proxy = fault_proxy(registry_token)  # https upstream with the test CA, plain http to the client
    challenge = httpx.post(f"{proxy.url}/v2/proxied/tok/blobs/uploads/")
    assert challenge.status_code == 401
    params = bearer_challenge(challenge.headers["WWW-Authenticate"])  # passed through untouched
    assert params["realm"] == token_issuer.realm
    # distribution lists the actions in Go map order, which varies from run to run.
    kind, name, actions = params["scope"].split(":")
    assert (kind, name, set(actions.split(","))) == ("repository", "proxied/tok", {"pull", "push"})

    auth = (registry_token.username or "", registry_token.password or "")
    token = httpx.get(params["realm"], params={"service": params["service"], "scope": params["scope"]}, auth=auth)
    started = httpx.post(
        f"{proxy.url}/v2/proxied/tok/blobs/uploads/", headers={"Authorization": f"Bearer {token.json()['token']}"}
    )
    assert started.status_code == 202
    assert started.headers["Location"].startswith(f"{proxy.url}/v2/proxied/tok/blobs/uploads/")


def test_proxy_drops_uploads_and_truncates_downloads(
    registry_open: Registry, busybox_ref: str, busybox_layout: BusyboxLayout, fault_proxy: MakeProxy
) -> None:
    proxy = fault_proxy(registry_open)
    started = httpx.post(f"{proxy.url}/v2/faults/blobs/uploads/")
    assert started.status_code == 202 and started.headers["Location"].startswith(
        proxy.url + "/v2/faults/blobs/uploads/"
    )

    proxy.add_fault(Fault(r"/blobs/uploads/", "PATCH", action="drop", after_bytes=10_000))
    data = bytes(range(256)) * 1024
    with pytest.raises(httpx.TransportError):
        httpx.patch(started.headers["Location"], content=data, headers={"Content-Type": "application/octet-stream"})
    dropped = proxy.exchanges[-1]
    assert dropped.status is None and dropped.fault == "drop" and dropped.uploaded >= 10_000

    fresh = httpx.post(f"{proxy.url}/v2/faults/blobs/uploads/")
    digest = "sha256:" + hashlib.sha256(data).hexdigest()

    def chunks() -> object:  # no length: sent chunked, which the proxy must forward too
        yield data[:100_000]
        yield data[100_000:]

    patched = httpx.patch(fresh.headers["Location"], content=chunks())  # type: ignore[arg-type]
    assert patched.status_code == 202, patched.text
    # httpx's params= would replace the Location's query (its _state); merge instead
    put = httpx.put(httpx.URL(patched.headers["Location"]).copy_merge_params({"digest": digest}))
    assert put.status_code == 201, put.text
    assert registry_open.blob_exists(digest)

    proxy.add_fault(Fault(r"/blobs/sha256:", "GET", action="truncate", after_bytes=1000))
    url = f"{proxy.url}/v2/library/busybox/blobs/{busybox_layout.layer_digest}"
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url)
    assert proxy.exchanges[-1].downloaded == 1000 and proxy.exchanges[-1].status == 200
    assert len(httpx.get(url).content) == busybox_layout.layer_size


def test_path_kinds() -> None:
    assert path_kind("/v2/") == "base"
    assert path_kind("/v2/a/b/blobs/uploads/?mount=sha256:1&from=c") == "blob_upload"
    assert path_kind("/v2/a/b/blobs/sha256:abc") == "blob"
    assert path_kind("/v2/a/manifests/latest") == "manifest"
    assert path_kind("/v2/a/tags/list?n=10") == "tags"
