"""The auth flow's exact request sequences, pinned with httpx.MockTransport (no registry model beyond a script)."""

from __future__ import annotations

import base64

import httpx
import pytest

from registry.auth import CONTEXT, SCOPES, RegistryAuth, merge_scopes, parse_challenges
from registry.dockerconfig import Credentials
from registry.errors import AuthError

REALM = "https://auth.example/jwt/auth"
BEARER = f'Bearer realm="{REALM}",service="container_registry",scope="repository:g/p:pull"'
SECRET = "s3cr3t-PASSWORD-xyz"


class Script:
    """Answers registry requests: 401 without a valid token, tokens from the realm; records everything."""

    def __init__(self, *, valid_tokens: set[str] | None = None, challenge: str = BEARER) -> None:
        self.log: list[httpx.Request] = []
        self.lines: list[str] = []  # snapshots: the flow mutates and resends the same Request object
        self.issued = 0
        self.valid = valid_tokens if valid_tokens is not None else set()
        self.challenge = challenge
        self.refuse_token = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.log.append(request)
        auth = request.headers.get("authorization", "-").split(" ")[0]
        query = "?" + request.url.query.decode() if request.url.host == "auth.example" else ""
        self.lines.append(f"{request.method} {request.url.host}{request.url.path}{query} {auth}")
        if request.url.host == "auth.example":
            if self.refuse_token:
                return httpx.Response(401, json={"errors": [{"code": "UNAUTHORIZED", "message": "HTTP Basic: Access denied"}]})
            self.issued += 1
            token = f"tok{self.issued}"
            self.valid.add(token)
            return httpx.Response(200, json={"token": token, "expires_in": 300})
        auth = request.headers.get("authorization", "")
        if auth.startswith("Bearer ") and auth[7:] in self.valid:
            return httpx.Response(200, content=b"ok")
        if auth == "Basic " + base64.b64encode(f"u:{SECRET}".encode()).decode():
            return httpx.Response(200, content=b"ok")
        return httpx.Response(401, headers={"WWW-Authenticate": self.challenge},
                              json={"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})

    def summary(self) -> list[str]:
        return list(self.lines)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


USER = Credentials("u", SECRET)


def client(script: Script, creds: Credentials | None = USER, clock: Clock | None = None):
    auth = RegistryAuth("reg.example", creds, clock=clock or Clock())
    return httpx.Client(auth=auth, transport=httpx.MockTransport(script)), auth


def get(c: httpx.Client, path: str, *scopes: str, method: str = "GET", **kw) -> httpx.Response:
    ext = {SCOPES: scopes, CONTEXT: "reg.example/g/p (push)"}
    return c.send(c.build_request(method, f"https://reg.example{path}", extensions=ext, **kw))


def test_bearer_challenge_token_then_cached():
    script = Script()
    c, _ = client(script)
    assert get(c, "/v2/g/p/manifests/1", "repository:g/p:pull,push").status_code == 200
    assert get(c, "/v2/g/p/blobs/sha256:x", "repository:g/p:pull").status_code == 200  # covered by pull,push
    assert script.summary() == [
        "GET reg.example/v2/g/p/manifests/1 -",
        "GET auth.example/jwt/auth?service=container_registry&account=u&scope=repository%3Ag%2Fp%3Apull%2Cpush Basic",
        "GET reg.example/v2/g/p/manifests/1 Bearer",
        "GET reg.example/v2/g/p/blobs/sha256:x Bearer",
    ]


def test_known_realm_fetches_new_scope_before_sending():
    script = Script()
    c, _ = client(script)
    get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
    script.log.clear(); script.lines.clear()
    get(c, "/v2/g/other/manifests/1", "repository:g/other:pull", "repository:g/p:pull")
    assert script.summary() == [
        ("GET auth.example/jwt/auth?service=container_registry&account=u"
         "&scope=repository%3Ag%2Fother%3Apull&scope=repository%3Ag%2Fp%3Apull Basic"),
        "GET reg.example/v2/g/other/manifests/1 Bearer",
    ]


def test_token_renewed_before_expiry_without_a_401():
    script = Script()
    clock = Clock()
    c, _ = client(script, clock=clock)
    get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
    clock.now += 300 - 29  # inside the renewal margin (the last 30 s of a 300 s token)
    script.log.clear(); script.lines.clear()
    get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
    assert [s.split(" ")[1].split("?")[0] for s in script.summary()] == ["auth.example/jwt/auth", "reg.example/v2/g/p/manifests/1"]


def test_revoked_token_gets_one_reauth_not_a_storm():
    script = Script()
    c, _ = client(script)
    get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
    script.valid.clear()  # the registry now refuses every token it sees...
    original = script.__call__

    def refuse_all_bearer(request):
        response = original(request)
        if request.url.host == "reg.example":
            script.valid.clear()
            if response.status_code == 200 and request.headers.get("authorization", "").startswith("Bearer"):
                return httpx.Response(401, headers={"WWW-Authenticate": BEARER})
        return response

    c2 = httpx.Client(auth=c.auth, transport=httpx.MockTransport(refuse_all_bearer))
    script.log.clear(); script.lines.clear()
    assert get(c2, "/v2/g/p/manifests/1", "repository:g/p:pull").status_code == 401
    assert [s.split("?")[0] for s in script.summary()] == [
        "GET reg.example/v2/g/p/manifests/1 Bearer",
        "GET auth.example/jwt/auth",
        "GET reg.example/v2/g/p/manifests/1 Bearer",
    ]


def test_basic_challenge_answered_then_sent_preemptively():
    script = Script(challenge='Basic realm="registry"')
    c, _ = client(script)
    assert get(c, "/v2/g/p/manifests/1").status_code == 200
    assert get(c, "/v2/g/p/manifests/2").status_code == 200
    assert script.summary() == ["GET reg.example/v2/g/p/manifests/1 -", "GET reg.example/v2/g/p/manifests/1 Basic",
                                "GET reg.example/v2/g/p/manifests/2 Basic"]


def test_wrong_basic_password_is_tried_once():
    script = Script(challenge='Basic realm="registry"')
    c, _ = client(script, creds=Credentials("u", "wrong"))
    assert get(c, "/v2/g/p/manifests/1").status_code == 401
    assert len(script.log) == 2


def test_refused_token_request_message_names_repo_and_user_not_password():
    script = Script()
    script.refuse_token = True
    c, _ = client(script)
    with pytest.raises(AuthError) as err:
        get(c, "/v2/g/p/blobs/uploads/", "repository:g/p:pull,push", method="POST")
    message = str(err.value)
    assert message.startswith("unauthorized: HTTP Basic: Access denied for reg.example/g/p (push)")
    assert "'u'" in message and SECRET not in message and SECRET not in repr(err.value)


def test_streamed_body_is_not_replayed_after_401():
    script = Script()
    c, _ = client(script)
    response = get(c, "/v2/g/p/blobs/uploads/x", "repository:g/p:push", method="PUT", content=iter([b"data"]))
    assert response.status_code == 401  # the uploader restarts the upload; the flow must not resend a used stream
    assert len(script.log) == 1


def test_identity_token_uses_oauth2_refresh_grant():
    script = Script()
    c, _ = client(script, creds=Credentials("", "", identity_token="refresh-abc"))
    get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
    token_request = script.log[1]
    assert token_request.method == "POST" and "authorization" not in token_request.headers
    body = token_request.content.decode()
    assert "grant_type=refresh_token" in body and "refresh_token=refresh-abc" in body


def test_anonymous_token_request_has_no_authorization():
    script = Script()
    c, _ = client(script, creds=None)
    get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
    assert "authorization" not in script.log[1].headers


def test_parse_challenges():
    header = ('Bearer realm="https://a/b?x=1,2",service="svc",scope="repository:a:pull,push repository:b:pull", '
              'Basic realm="r"')
    first, second = parse_challenges(header)
    assert first.scheme == "bearer" and first.params["realm"] == "https://a/b?x=1,2"
    assert first.params["scope"] == "repository:a:pull,push repository:b:pull"
    assert second.scheme == "basic" and second.params == {"realm": "r"}
    assert parse_challenges("Basic") == [parse_challenges("Basic")[0]]


def test_merge_scopes():
    assert merge_scopes(["repository:a:pull"], ["repository:a:push repository:b:pull"]) == (
        "repository:a:pull,push", "repository:b:pull")


def test_no_credentials_or_token_for_another_host():
    """An absolute upload Location on another host (storage backend, or a hostile registry) gets nothing."""
    script = Script()
    c, _ = client(script)
    assert get(c, "/v2/g/p/manifests/1", "repository:g/p:pull").status_code == 200
    other = c.send(c.build_request("PUT", "https://storage.elsewhere/upload?digest=x",
                                   extensions={SCOPES: ("repository:g/p:push",), CONTEXT: "reg.example/g/p (push)"}))
    assert other.status_code == 401  # the script wants a token, and none was sent
    sent = script.log[-1]
    assert sent.url.host == "storage.elsewhere" and "authorization" not in sent.headers
    assert all(SECRET not in str(r.headers) for r in script.log if r.url.host == "storage.elsewhere")


@pytest.mark.parametrize(("realm", "refused"), [("http://auth.example/jwt/auth", True),
                                                ("http://127.0.0.1:9/jwt/auth", False)])
def test_no_password_to_a_plain_http_realm_of_an_https_registry(realm: str, refused: bool):
    script = Script(challenge=f'Bearer realm="{realm}",service="container_registry"')
    c, _ = client(script)
    if refused:
        with pytest.raises(AuthError, match="plain-HTTP token realm auth.example"):
            get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
        assert all(r.url.scheme == "https" for r in script.log), "nothing was sent to the http realm"
    else:
        with pytest.raises(AuthError, match="returned no token"):  # the script serves no realm on 127.0.0.1
            get(c, "/v2/g/p/manifests/1", "repository:g/p:pull")
        assert any(r.url.host == "127.0.0.1" for r in script.log), "a loopback realm may be plain HTTP"
