"""Auth against the real registry: wrong passwords, missing permissions, token expiry, TLS trust."""

from __future__ import annotations

import base64
import logging

import pytest
from registry_helpers import build_image, options_for

from registry.client import RegistryClient
from registry.errors import AuthError, RegistryUnreachableError
from registry.reference import parse_reference

DISTINCTIVE = "Zq9-distinctive-PASSWORD-7781"


def push(client, ref, image):
    return client.push_image([ref], image.manifest_raw, image.media_type, image.config_raw, image.layers)


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_wrong_password_message_names_repo_and_action_never_the_password(mode, request, store, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    registry = request.getfixturevalue(f"registry_{mode}")
    image = build_image(store, [{"w": b"wrong"}])
    ref = parse_reference(f"{registry.host}/wrong/password:1")
    with RegistryClient(options_for(registry, password=DISTINCTIVE)) as client, pytest.raises(AuthError) as err:
        push(client, ref, image)
    message = str(err.value)
    assert message.startswith("unauthorized: ")
    assert f"for {registry.host}/wrong/password (push)" in message
    assert f"credentials of user '{registry.username}' refused" in message
    out, errout = capfd.readouterr()
    everything = "\n".join([message, repr(err.value), caplog.text, out, errout])
    assert DISTINCTIVE not in everything
    assert base64.b64encode(f"{registry.username}:{DISTINCTIVE}".encode()).decode() not in everything
    assert "Bearer ey" not in everything  # no JWT either


def test_missing_push_permission_is_denied_not_unauthorized(registry_token, token_accounts, store):
    reader = token_accounts["reader"]
    image = build_image(store, [{"d": b"denied"}])
    options = options_for(registry_token, username=reader.username, password=reader.password)
    with RegistryClient(options) as client, pytest.raises(AuthError) as err:
        push(client, parse_reference(f"{registry_token.host}/someone/else:1"), image)
    assert str(err.value).startswith(f"denied: requested access to the resource is denied for "
                                     f"{registry_token.host}/someone/else (push)")
    assert "'reader' lacks this permission" in str(err.value)


def test_token_refused_by_the_registry_gets_one_reauth_not_a_storm(registry_token, token_issuer, store):
    image = build_image(store, [{"e": b"expired"}])
    ref = parse_reference(f"{registry_token.host}/expiry/storm:1")
    token_issuer.clock_skew = -(token_issuer.lifetime + 120)  # tokens already expired for the registry
    try:
        token_issuer.reset_counters()
        with RegistryClient(options_for(registry_token)) as client, pytest.raises(AuthError):
            push(client, ref, image)
        assert token_issuer.request_count == 2  # the first token, one fresh one after the 401, then stop
    finally:
        token_issuer.clock_skew = 0.0


class FakeClock:
    """A monotonic clock the test moves by hand: token lifetimes age without sleeping."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_renewed_before_it_expires(registry_token, token_issuer, store):
    ref = parse_reference(f"{registry_token.host}/expiry/renew:1")
    assert token_issuer.lifetime == 300  # renewed 30 s before the end; the registry accepts it throughout
    clock = FakeClock()
    with RegistryClient(options_for(registry_token), clock=clock) as client:
        push(client, ref, build_image(store, [{"1": b"one"}]))
        token_issuer.reset_counters()
        clock.now += 260
        push(client, ref, build_image(store, [{"2": b"two"}]))
        assert token_issuer.request_count == 0  # still valid: reused
        clock.now += 15  # 275 s old: inside the renewal margin, still valid for the registry
        push(client, ref, build_image(store, [{"3": b"three"}]))
        assert token_issuer.request_count == 1  # renewed ahead of expiry, before any 401


def test_ci_job_token_pushes_to_its_project(registry_token, token_accounts, store):
    ci = token_accounts["ci_job"]
    image = build_image(store, [{"ci": b"job"}])
    with RegistryClient(options_for(registry_token, username=ci.username, password=ci.password)) as client:
        assert push(client, parse_reference(f"{registry_token.host}/group/project/sub/app:ci"), image) == image.digest


def test_tls_needs_the_ca_unless_told_to_skip(registry_tls, store):
    image = build_image(store, [{"t": b"tls"}])
    ref = parse_reference(f"{registry_tls.host}/tls/ca:1")
    # it speaks TLS: no fallback to plain HTTP, a clear error instead
    with RegistryClient(options_for(registry_tls, ca_files={})) as client, \
            pytest.raises(RegistryUnreachableError) as err:
        push(client, ref, image)
    assert "certificate verify failed" in str(err.value) and "--registry-certificate" in str(err.value)
    with RegistryClient(options_for(registry_tls, ca_files={}, skip_tls_verify=True)) as client:
        assert push(client, ref, image) == image.digest


def test_debug_logs_of_a_token_push_hold_no_secret(registry_token, store, caplog):
    caplog.set_level(logging.DEBUG)
    image = build_image(store, [{"l": b"logs"}])
    with RegistryClient(options_for(registry_token)) as client:
        push(client, parse_reference(f"{registry_token.host}/logs/clean:1"), image)
    assert registry_token.password not in caplog.text
    assert "eyJ" not in caplog.text  # no JWT (header, payload) in any line
