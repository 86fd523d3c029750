"""The registry options kaniko's flags map to (issue #12): mirrors for any host, per-host and pull-only TLS
relaxations, client certificates, and plain HTTP after HTTPS for registries only pulled from."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from fixtures.tls import TLSFiles
from registry.client import RegistryClient
from registry.errors import RegistryError
from registry.options import RegistryOptions
from registry.reference import parse_reference


def client(**options: object) -> RegistryClient:
    return RegistryClient(RegistryOptions(use_docker_config=False, backoff_base=0, **options))  # type: ignore[arg-type]


def test_registry_maps_for_any_host_with_prefixes_then_the_host_itself() -> None:
    ref = parse_reference("quay.io/org/app:1")
    with client(registry_maps={"quay.io": ("m1.example", "m2.example/cache/")}) as c:
        assert [str(r) for r in c.read_candidates(ref)] == ["m1.example/org/app:1", "m2.example/cache/org/app:1",
                                                            "quay.io/org/app:1"]
        assert c.read_candidates(parse_reference("ghcr.io/x/y")) == [parse_reference("ghcr.io/x/y")]


def test_hub_maps_come_before_its_mirrors_and_fallback_can_be_refused() -> None:
    ref = parse_reference("busybox")
    with client(registry_maps={"docker.io": ("map.example",)}, mirrors=("mirror.example",),
                skip_default_registry_fallback=True) as c:
        assert [str(r) for r in c.read_candidates(ref)] == ["map.example/library/busybox",
                                                            "mirror.example/library/busybox"]


def test_tls_verification_per_host_and_for_pulls_only() -> None:
    with client(skip_tls_verify_registries=frozenset({"insecure.example"})) as c:
        assert c.session._verify("insecure.example").verify_mode == ssl.CERT_NONE
        assert c.session._verify("other.example").verify_mode == ssl.CERT_REQUIRED
    with client(pull_skip_tls_verify=True, push_registries=frozenset({"push.example"})) as c:
        assert c.session._verify("base.example").verify_mode == ssl.CERT_NONE
        assert c.session._verify("push.example").verify_mode == ssl.CERT_REQUIRED


def test_client_certificates_are_loaded_and_a_bad_one_is_named(tls_files: TLSFiles, tmp_path: Path) -> None:
    pair = (str(tls_files.server_cert), str(tls_files.server_key))  # any cert and its key load
    with client(client_certificates={"mtls.example": pair}) as c:
        c.session._verify("mtls.example")  # loads without error
    missing = (str(tmp_path / "nope.pem"), str(tmp_path / "nope.key"))
    with client(client_certificates={"mtls.example": missing}) as c, \
            pytest.raises(RegistryError, match="cannot read the client certificate .*nope.pem for mtls.example"):
        c.session._verify("mtls.example")


@pytest.mark.parametrize(("pull_insecure", "push_registries", "scheme"), [
    (False, frozenset(), "https"),
    (True, frozenset(), "http"),
    (True, frozenset({"base.example"}), "https"),  # a registry pushed to keeps HTTPS
])
def test_insecure_pull_falls_back_to_plain_http(pull_insecure: bool, push_registries: frozenset[str],
                                                scheme: str) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.scheme == "https":
            raise httpx.ConnectError("[SSL: WRONG_VERSION_NUMBER] wrong version number",
                                     request=request) from ssl.SSLError(1, "WRONG_VERSION_NUMBER")
        return httpx.Response(200)

    options = RegistryOptions(use_docker_config=False, pull_insecure=pull_insecure, push_registries=push_registries)
    with RegistryClient(options, transport=httpx.MockTransport(handler)) as c:
        assert c.session.host("base.example").base_url == f"{scheme}://base.example"
