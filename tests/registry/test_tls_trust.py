"""A CA in a `$SSL_CERT_DIR` directory is trusted whatever its file name, as Go programs (kaniko) read it."""

from __future__ import annotations

import pytest
from registry_helpers import build_image, options_for

from registry.client import RegistryClient
from registry.errors import RegistryUnreachableError
from registry.reference import parse_reference


def push(client, ref, image):
    return client.push_image([ref], image.manifest_raw, image.media_type, image.config_raw, image.layers)


def test_a_ca_in_ssl_cert_dir_is_trusted_under_any_name(registry_tls, store, tmp_path, monkeypatch):
    image = build_image(store, [{"d": b"cert dir"}])
    ref = parse_reference(f"{registry_tls.host}/tls/cert-dir:1")
    options = options_for(registry_tls, ca_files={})  # no --registry-certificate: only the directory can help
    # What a directory may hold besides certificates: Go skips them, so does wharfie.
    noise = tmp_path / "noise"
    (noise / "a-directory").mkdir(parents=True)
    (noise / "README").write_text("not a certificate\n")
    (noise / "broken.crt").write_text("-----BEGIN CERTIFICATE-----\nbm90IGRlcg==\n-----END CERTIFICATE-----\n")
    (noise / "3513523f.0").symlink_to("missing.crt")  # a hash link, dangling
    monkeypatch.setenv("SSL_CERT_DIR", f"{tmp_path / 'absent'}:{noise}")
    with RegistryClient(options) as client, pytest.raises(RegistryUnreachableError) as err:
        push(client, ref, image)
    assert "certificate verify failed" in str(err.value)

    # GitLab's documented kaniko step: the private CA appended to a bundle of any name in /kaniko/ssl/certs.
    kaniko_certs = tmp_path / "kaniko-ssl-certs"
    kaniko_certs.mkdir()
    (kaniko_certs / "additional-ca-cert-bundle.crt").write_text("# our CA\n" + registry_tls.ca_file.read_text())
    monkeypatch.setenv("SSL_CERT_DIR", f"{noise}:{kaniko_certs}")
    with RegistryClient(options) as client:
        assert push(client, ref, image) == image.digest
