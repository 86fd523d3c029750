"""ADD <https-url> trusts what the registry client trusts: a CA given only in a `$SSL_CERT_DIR` file of any name.

The server is the TLS registry fixture (the test CA's certificate); the file
ADD fetches is a blob stored there, checked by its digest. `$SSL_CERT_FILE`
stays the machine's bundle, which does not hold the test CA: only the
directory can make the download succeed.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import httpx
import pytest

from builder.steps.add_sources import download
from builder.steps.fetch_guard import FetchGuard
from fixtures.readback import run_wharfie, tree_of
from fixtures.registry import Registry
from fixtures.tls import ssl_cert_dirs
from oci.errors import WharfieError

CONTENT = b"fetched over TLS from a server only $SSL_CERT_DIR vouches for\n"


@pytest.fixture(scope="module")
def blob_url(registry_tls: Registry) -> str:
    """An https URL on the TLS registry serving CONTENT (a blob, uploaded with the test CA trusted directly)."""
    digest = "sha256:" + hashlib.sha256(CONTENT).hexdigest()
    with httpx.Client(verify=registry_tls.ssl_context()) as client:
        started = client.post(f"{registry_tls.url}/v2/add-trust/blobs/uploads/")
        assert started.status_code == 202, started.text
        location = httpx.URL(registry_tls.url).join(started.headers["Location"])
        done = client.put(location.copy_merge_params({"digest": digest}), content=CONTENT)
        assert done.status_code == 201, done.text
    return f"{registry_tls.url}/v2/add-trust/blobs/{digest}"


def _cert_dirs(tmp_path: Path, registry_tls: Registry) -> tuple[str, str]:
    """(a directory holding the test CA under a name OpenSSL would never look up, one holding no CA)."""
    assert registry_tls.ca_file is not None
    with_ca, without = ssl_cert_dirs(tmp_path, registry_tls.ca_file)
    return str(with_ca), str(without)


# Both ways the download client is made: --network=host (httpx's own transport), and the default guarded
# transport (the guard is told the loopback counts as outside: the test has no other server).
GUARDS = {"host-network": FetchGuard(allow_host=True), "guarded": FetchGuard(outside=frozenset({"127.0.0.1"}))}


@pytest.mark.parametrize("guard", GUARDS.values(), ids=GUARDS.keys())
def test_download_trusts_a_ca_given_only_in_ssl_cert_dir(registry_tls: Registry, blob_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch, guard: FetchGuard) -> None:
    with_ca, without = _cert_dirs(tmp_path, registry_tls)
    checksum = "sha256:" + hashlib.sha256(CONTENT).hexdigest()

    monkeypatch.setenv("SSL_CERT_DIR", without)
    refused = tmp_path / "refused"
    refused.mkdir()
    with pytest.raises(WharfieError) as failed:
        download(blob_url, refused, checksum=checksum, what="ADD", guard=guard)
    message = str(failed.value)
    assert message.startswith(f"ADD: downloading {blob_url} failed: ") and "certificate verify failed" in message
    assert "\n" not in message
    assert list(refused.iterdir()) == []

    monkeypatch.setenv("SSL_CERT_DIR", f"{without}:{with_ca}")
    fetched = tmp_path / "fetched"
    fetched.mkdir()
    saved = download(blob_url, fetched, checksum=checksum, what="ADD", guard=guard)
    assert saved.read_bytes() == CONTENT


def _build(context: Path, layout: Path, cert_dir: str) -> subprocess.CompletedProcess[str]:
    return run_wharfie("build", str(context), "--no-push", "--network=host", "--oci-layout-path", str(layout),
                       env={"SSL_CERT_DIR": cert_dir})


def test_an_add_build_fetches_with_the_ca_of_ssl_cert_dir(registry_tls: Registry, blob_url: str,
                                                           tmp_path: Path) -> None:
    """The whole CLI, as a kaniko job with its CA in /kaniko/ssl/certs runs it; umoci reads the image back."""
    with_ca, without = _cert_dirs(tmp_path, registry_tls)
    context = tmp_path / "context"
    context.mkdir()
    checksum = "sha256:" + hashlib.sha256(CONTENT).hexdigest()
    (context / "Dockerfile").write_text(f"FROM scratch\nADD --checksum={checksum} {blob_url} /fetched\n")

    failed = _build(context, tmp_path / "refused", without)
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr, failed.stderr
    errors = [line for line in failed.stderr.splitlines() if "certificate verify failed" in line]
    assert len(errors) == 1 and "ADD" in errors[0] and blob_url in errors[0], failed.stderr

    layout = tmp_path / "layout"
    built = _build(context, layout, with_ca)
    assert built.returncode == 0, built.stderr
    bundle = tmp_path / "bundle"
    # With no destination, the layout's one image is tagged "latest".
    unpacked = subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], capture_output=True,
                              text=True, check=False)
    assert unpacked.returncode == 0, unpacked.stderr
    assert tree_of(bundle / "rootfs")["fetched"][4] == CONTENT.decode()
