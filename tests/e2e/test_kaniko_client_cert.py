"""kaniko's --registry-client-cert against a registry that requires mutual TLS (issue #12).

``registry_mtls`` (tests/conftest.py) is distribution's registry with
``http.tls.clientcas`` set to the test CA: a TLS handshake without a client
certificate signed by that CA is refused. Builds push to it and pull their
base from it; what arrived is read back with skopeo and umoci, presenting the
fixture's own copy of the client certificate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fixtures.readback import read_back, skopeo_inspect
from fixtures.registry import Registry
from fixtures.tls import ClientCertFiles, TLSFiles, make_client_cert, make_tls

# The test runner may itself run in a CI job: the builds here must not see its variables.
UNSET = ("CI", "GITLAB_CI", "KANIKO_DIR", "KANIKO_NO_PUSH", "KANIKO_REGISTRY_MAP", "KANIKO_REGISTRY_MIRROR",
         "CI_REGISTRY_IMAGE", "DOCKER_CONFIG")


def wharfie(*args: str) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if name not in UNSET}
    return subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True, env=clean,
                          timeout=600, check=False)


def context_with(tmp_path: Path, dockerfile: str, files: dict[str, str]) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in files.items():
        (context / name).write_text(text)
    return context


def cert_flag(registry: Registry, cert: ClientCertFiles) -> list[str]:
    return ["--registry-client-cert", f"{registry.host}={cert.cert},{cert.key}"]


def ca_flag(registry: Registry) -> list[str]:
    return ["--registry-certificate", f"{registry.host}={registry.ca_file}"]


def tags_of(registry: Registry, repo: str) -> list[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list", verify=registry.ssl_context() or False)
    return [] if response.status_code == 404 else sorted(response.json().get("tags") or [])


def the_error(result: subprocess.CompletedProcess[str]) -> str:
    """The one error line: the last of stderr; no traceback anywhere."""
    assert "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def stranger_cert(tmp_path_factory: pytest.TempPathFactory) -> ClientCertFiles:
    """A well-formed client certificate, signed by a CA the mTLS registry does not trust."""
    directory = tmp_path_factory.mktemp("stranger")
    return make_client_cert(make_tls(directory / "ca"), directory / "client")


def test_push_with_the_client_certificate_and_read_back(registry_mtls: Registry, client_cert: ClientCertFiles,
                                                        tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY hello.txt /hello.txt\n", {"hello.txt": "mutual\n"})
    dest = f"{registry_mtls.host}/kaniko/mtls-push:1"
    digest_file = tmp_path / "digest"
    result = wharfie("build", str(context), "-d", dest, *ca_flag(registry_mtls), *cert_flag(registry_mtls, client_cert),
                     "--digest-file", str(digest_file), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    skopeo_flags = [f"--cert-dir={registry_mtls.cert_dir}"]  # the fixture's client certificate and the CA
    assert skopeo_inspect(dest, skopeo_flags)["Digest"] == digest_file.read_text()
    image = read_back(dest, tmp_path / "readback", [f"--src-cert-dir={registry_mtls.cert_dir}"])
    assert (image.rootfs / "hello.txt").read_text() == "mutual\n"


@pytest.mark.parametrize("who", ["none", "stranger"])
def test_push_without_a_trusted_client_certificate_fails_naming_the_registry(
        registry_mtls: Registry, stranger_cert: ClientCertFiles, who: str, tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    repo = f"kaniko/mtls-refused-{who}"
    flags = cert_flag(registry_mtls, stranger_cert) if who == "stranger" else []
    result = wharfie("build", str(context), "-d", f"{registry_mtls.host}/{repo}:1", *ca_flag(registry_mtls), *flags,
                     "--push-retry", "0", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1, result.stderr
    error = the_error(result)
    assert error.startswith("wharfie: error: cannot reach ") and registry_mtls.host in error, error
    assert "--registry-client-cert" in error, "the hint says what the registry wants"
    assert tags_of(registry_mtls, repo) == []


@pytest.mark.parametrize("fault", ["missing cert", "missing key", "key is a directory", "cert not PEM",
                                   "key of another cert", "key encrypted"])
def test_an_unusable_certificate_file_is_one_line_naming_it(registry_mtls: Registry, client_cert: ClientCertFiles,
                                                            tls_files: TLSFiles, fault: str, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from fixtures.tls import make_key

    cert, key = client_cert.cert, client_cert.key
    if fault == "missing cert":
        cert = at_fault = tmp_path / "nope.pem"
    elif fault == "missing key":
        key = at_fault = tmp_path / "nope-key.pem"
    elif fault == "key is a directory":
        key = at_fault = tmp_path
    elif fault == "cert not PEM":
        cert = at_fault = tmp_path / "cert.txt"
        cert.write_text("not a certificate\n")
    elif fault == "key of another cert":
        key = at_fault = tls_files.server_key
    else:
        key = at_fault = tmp_path / "encrypted-key.pem"
        key.write_bytes(make_key().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                 serialization.BestAvailableEncryption(b"secret")))
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    repo = "kaniko/mtls-badfile"
    result = wharfie("build", str(context), "-d", f"{registry_mtls.host}/{repo}:1", *ca_flag(registry_mtls),
                     "--registry-client-cert", f"{registry_mtls.host}={cert},{key}",
                     "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 2, result.stderr  # a bad flag value: refused before anything is built
    error = the_error(result)
    assert "--registry-client-cert" in error and f" {at_fault} " in error and registry_mtls.host in error, error
    assert [line for line in result.stderr.splitlines() if "rror" in line] == [error]
    assert "COPY" not in result.stderr and tags_of(registry_mtls, repo) == []


def test_pull_the_base_from_the_mtls_registry(registry_mtls: Registry, registry_open: Registry,
                                              client_cert: ClientCertFiles, busybox_ref: str, tmp_path: Path) -> None:
    base = f"{registry_mtls.host}/kaniko/mtls-base:latest"
    copied = subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false",
                             f"--dest-cert-dir={registry_mtls.cert_dir}", f"docker://{busybox_ref}", f"docker://{base}"],
                            capture_output=True, text=True, check=False)
    assert copied.returncode == 0, copied.stderr
    context = context_with(tmp_path, f"FROM {base}\nCOPY a /a\n", {"a": "from mtls\n"})
    dest = f"{registry_open.host}/kaniko/from-mtls:1"
    common = ["build", str(context), "-d", dest, "--insecure-registry", registry_open.host, *ca_flag(registry_mtls),
              "--push-retry", "0", "--cache-dir", str(tmp_path / "cache")]
    refused = wharfie(*common)
    assert refused.returncode == 1
    error = the_error(refused)
    assert base in error and "--registry-client-cert" in error, error
    built = wharfie(*common, *cert_flag(registry_mtls, client_cert))
    assert built.returncode == 0, built.stderr
    image = read_back(dest, tmp_path / "readback", ["--src-tls-verify=false"])
    assert (image.rootfs / "a").read_text() == "from mtls\n" and (image.rootfs / "bin" / "busybox").is_file()


@pytest.mark.parametrize(("tls_flags", "with_cert", "outcome"), [
    # The client certificate is presented whatever verification of the server's certificate is asked.
    ("skip-tls-verify-registry", True, "pushed"),
    ("skip-tls-verify", True, "pushed"),
    # Not verifying the server's certificate does not stand in for the client's.
    ("skip-tls-verify-registry", False, "client certificate refused"),
    # A client certificate does not make an unknown server CA trusted.
    ("none", True, "server certificate unverified"),
])
def test_client_certificates_combine_with_the_other_tls_flags(registry_mtls: Registry, client_cert: ClientCertFiles,
                                                              tls_flags: str, with_cert: bool, outcome: str,
                                                              tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": tls_flags + "\n"})
    repo = f"kaniko/mtls-{tls_flags}-{str(with_cert).lower()}"
    flags = {"skip-tls-verify-registry": ["--skip-tls-verify-registry", registry_mtls.host],
             "skip-tls-verify": ["--skip-tls-verify"], "none": []}[tls_flags]
    result = wharfie("build", str(context), "-d", f"{registry_mtls.host}/{repo}:1", *flags,
                     *(cert_flag(registry_mtls, client_cert) if with_cert else []),
                     "--push-retry", "0", "--cache-dir", str(tmp_path / "cache"))
    if outcome == "pushed":
        assert result.returncode == 0, result.stderr
        assert tags_of(registry_mtls, repo) == ["1"]
        return
    assert result.returncode == 1, result.stderr
    error = the_error(result)
    hint = "--registry-client-cert" if outcome == "client certificate refused" else "--registry-certificate"
    assert registry_mtls.host in error and hint in error, error
    assert tags_of(registry_mtls, repo) == []

