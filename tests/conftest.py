"""Session-wide test bed: real registries (open, htpasswd, token, TLS, mutual TLS), a busybox image, a fault proxy.

Registries are session-scoped and started only when a test asks for one; tests
sharing one must use repository names of their own.  The token registry serves
TLS with the test CA; its token realm (``TokenIssuer``) is plain HTTP on
127.0.0.1, as the realm's scheme is independent of the registry's.
Everything is stopped at the end of the session; temp dirs come from
``tmp_path_factory``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from fixtures.baseimage import BusyboxLayout, make_busybox_layout, push_busybox
from fixtures.proxy import FaultProxy
from fixtures.registry import Registry
from fixtures.tls import ClientCertFiles, TLSFiles, make_client_cert, make_tls
from fixtures.token_issuer import Account, TokenIssuer

# Fuzz budgets (issue #17). `ci`, the default: a fixed seed (derandomize) and a bounded example
# count, no example database. `long`: `pytest --hypothesis-profile=long` or WHARFIE_FUZZ=long, for
# campaigns on demand; every failure one finds is kept as an @example in its test.
settings.register_profile("ci", derandomize=True, max_examples=150, deadline=None, database=None,
                          print_blob=True)
settings.register_profile("long", max_examples=20_000, deadline=None, database=None, print_blob=True)
settings.load_profile(os.environ.get("WHARFIE_FUZZ", "ci"))

# wharfie's own image, built once per session for tests/image and tests/gitlab_ci: fixtures `podman`,
# `debian_python_ref`, `wharfie_image`.
pytest_plugins = ["fixtures.wharfie_image"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than a few seconds (deselect with -m 'not slow')")


# Every process the session starts inherits this mark (builds, registries, helpers), so what is
# still running at the end is found by its environment, whatever became of its parent.
SESSION_MARK = "WHARFIE_TEST_SESSION"


def _marked_processes(mark: str) -> list[tuple[int, str]]:
    found = []
    needle = f"{SESSION_MARK}={mark}".encode()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            if needle in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
                found.append((int(pid), Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()))
        except OSError:
            continue
    return found


@pytest.fixture(scope="session", autouse=True)
def nothing_left_running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole session: no process it started and no mount under its temp dirs remain (#13)."""
    mark = uuid.uuid4().hex
    os.environ[SESSION_MARK] = mark
    yield
    base = str(tmp_path_factory.getbasetemp())
    mounts = [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if base in line]
    processes = _marked_processes(mark)
    for pid, _ in processes:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    assert not processes, f"processes started by the tests are still running: {processes}"
    assert not mounts, f"mounts made by the tests are still there: {mounts}"


@pytest.fixture(autouse=True)
def tmpdir_left_clean(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test gets a $TMPDIR of its own; after it, nothing of wharfie's may stay there (#13)."""
    tmpdir = tmp_path_factory.mktemp("TMPDIR")
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    yield
    left = [name for name in os.listdir(tmpdir) if name.startswith("wharfie")]
    assert not left, f"wharfie left {left} in $TMPDIR"


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TLSFiles:
    """A test CA and a server certificate for 127.0.0.1/localhost (``cert_dir`` holds ``ca.crt``)."""
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def token_issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenIssuer]:
    """The GitLab-like JWT realm behind ``registry_token``, on plain HTTP."""
    with TokenIssuer(tmp_path_factory.mktemp("token-issuer")) as issuer:
        yield issuer


@pytest.fixture(scope="session")
def token_accounts(token_issuer: TokenIssuer) -> dict[str, Account]:
    """Users of the token realm besides the registry's own admin (``registry_token.username``).

    ``reader``: pull on every repository.  ``ci_job``: ``gitlab-ci-token`` with a job token,
    pull and push on ``group/project`` and below, pull elsewhere.
    """
    return {
        "reader": token_issuer.add_user("reader", "reader-secret", {"*": ("pull",)}),
        "ci_job": token_issuer.add_user(
            "gitlab-ci-token",
            "job-token-4242",
            {"group/project": ("pull", "push"), "group/project/*": ("pull", "push"), "*": ("pull",)},
        ),
    }


@pytest.fixture(scope="session")
def registry_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Plain HTTP, no auth."""
    with Registry(tmp_path_factory.mktemp("registry-open")) as registry:
        yield registry


@pytest.fixture(scope="session")
def registry_htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Plain HTTP, Basic auth with ``username``/``password`` (bcrypt htpasswd)."""
    with Registry(tmp_path_factory.mktemp("registry-htpasswd"), mode="htpasswd") as registry:
        yield registry


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> Iterator[Registry]:
    """HTTPS with the test CA (``ca_file``, ``cert_dir``), no auth."""
    with Registry(tmp_path_factory.mktemp("registry-tls"), tls=tls_files) as registry:
        yield registry


@pytest.fixture(scope="session")
def registry_token(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles, token_issuer: TokenIssuer
) -> Iterator[Registry]:
    """HTTPS with the test CA, Bearer token auth from ``token_issuer``; ``username``/``password`` may do anything."""
    workdir = tmp_path_factory.mktemp("registry-token")
    with Registry(workdir, mode="token", tls=tls_files, issuer=token_issuer) as registry:
        yield registry


@pytest.fixture(scope="session")
def client_cert(tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles) -> ClientCertFiles:
    """A client certificate and key signed by the test CA: what ``registry_mtls`` asks for."""
    return make_client_cert(tls_files, tmp_path_factory.mktemp("client-cert"))


@pytest.fixture(scope="session")
def registry_mtls(
    tmp_path_factory: pytest.TempPathFactory, tls_files: TLSFiles, client_cert: ClientCertFiles
) -> Iterator[Registry]:
    """HTTPS with the test CA, no auth, and mutual TLS: a client certificate signed by the test CA is required
    (``client_cert`` is one; ``cert_dir`` holds it for skopeo)."""
    with Registry(tmp_path_factory.mktemp("registry-mtls"), tls=tls_files, client_cert=client_cert) as registry:
        yield registry


@pytest.fixture(scope="session")
def busybox_layout(tmp_path_factory: pytest.TempPathFactory) -> BusyboxLayout:
    """The busybox image as an OCI layout, with the digests it was written with."""
    return make_busybox_layout(tmp_path_factory.mktemp("busybox") / "layout")


@pytest.fixture(scope="session")
def busybox_ref(registry_open: Registry) -> str:
    """``127.0.0.1:PORT/library/busybox:latest`` in ``registry_open``."""
    return push_busybox(registry_open)


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[Registry | str], FaultProxy]]:
    """A factory: ``fault_proxy(registry)`` (or an upstream URL) starts a ``FaultProxy``, stopped after the test."""
    proxies: list[FaultProxy] = []

    def start(upstream: Registry | str) -> FaultProxy:
        if isinstance(upstream, Registry):
            proxy = FaultProxy(upstream.url, ca_file=upstream.ca_file)
        else:
            proxy = FaultProxy(upstream)
        proxies.append(proxy.start())
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()
