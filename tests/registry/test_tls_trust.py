"""A CA in a `$SSL_CERT_DIR` directory is trusted whatever its file name, as Go programs (kaniko) read it:
by the registry client and by GitLab's REST API client (ADD's downloads: tests/builder/test_add_url_trust.py)."""

from __future__ import annotations

import json

import pytest
from gitlab_helpers import push_tags
from registry_helpers import build_image, options_for

from fixtures.gitlab_api import GitLabAPIServer
from fixtures.readback import run_wharfie
from fixtures.tls import ssl_cert_dirs
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


def test_gitlab_api_trusts_a_ca_given_only_in_ssl_cert_dir(registry_open, tls_files, store, tmp_path):
    """`wharfie repositories ls` in a job whose GitLab serves HTTPS with a private CA put in $SSL_CERT_DIR."""
    push_tags(registry_open, store, "gltls/proj/app", ["a", "b"])
    kaniko_certs, noise = ssl_cert_dirs(tmp_path, tls_files.ca_cert)
    with GitLabAPIServer(registry_open, {"gltls/proj": 61}, tls=tls_files) as api:
        api.add_job_token("job-tls-6161", "gltls/proj")
        assert api.url.startswith("https://")
        env = {"CI_API_V4_URL": api.url, "CI_PROJECT_ID": "61", "CI_JOB_TOKEN": "job-tls-6161"}

        refused = run_wharfie("repositories", "ls", "--format", "json", env={**env, "SSL_CERT_DIR": str(noise)})
        assert refused.returncode != 0 and api.calls == []
        assert "Traceback" not in refused.stderr, refused.stderr
        errors = [line for line in refused.stderr.splitlines() if "certificate verify failed" in line]
        assert len(errors) == 1 and api.url in errors[0], refused.stderr
        assert "job-tls-6161" not in refused.stdout + refused.stderr

        listed = run_wharfie("repositories", "ls", "--format", "json",
                             env={**env, "SSL_CERT_DIR": f"{noise}:{kaniko_certs}"})
        assert listed.returncode == 0, listed.stderr
        assert [(r["path"], r["tags_count"]) for r in json.loads(listed.stdout)] == [("gltls/proj/app", 2)]
