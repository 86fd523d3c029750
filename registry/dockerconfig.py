"""docker's `config.json`: read credentials from it, and write them as `docker login` does.

CI jobs and deploy servers already hold their registry credentials there (or
in a credential helper it names), so wharfie reads the same file, honours
`$DOCKER_CONFIG`, and writes entries other tools read back. Helpers are run as
``docker-credential-NAME get|store|erase`` with the server on stdin and JSON
on stdout, exactly the protocol docker speaks; their secrets never reach a log.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oci.errors import WharfieError

__all__ = ["HUB_CONFIG_KEY", "Credentials", "DockerConfig", "config_key", "config_path"]

log = logging.getLogger(__name__)

HUB_CONFIG_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_HELPER_TIMEOUT = 30.0
_TOKEN_USER = "<token>"  # docker's marker for an identity (refresh) token instead of a password


@dataclass(frozen=True)
class Credentials:
    """A username and a secret for one registry; `repr` never shows the secret.

    `identity_token` is an OAuth2 refresh token (docker's ``identitytoken``),
    exchanged at the token realm instead of a password.
    """

    username: str
    password: str = field(repr=False)
    identity_token: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password=***)"

    __str__ = __repr__


def config_path(environ: Mapping[str, str] = os.environ) -> Path:
    """`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json` (where docker looks)."""
    base = environ.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    home = environ.get("HOME") or str(Path.home())
    return Path(home) / ".docker" / "config.json"


def _hostname(key: str) -> str:
    # docker's ConvertToHostname: drop the scheme and any path.
    for scheme in ("https://", "http://"):
        key = key.removeprefix(scheme)
    return key.split("/", 1)[0]


def config_key(registry: str) -> str:
    """The `auths` key docker writes for `registry`."""
    return HUB_CONFIG_KEY if registry in _HUB_ALIASES else registry


def _same_registry(key: str, registry: str) -> bool:
    host = _hostname(key)
    if registry in _HUB_ALIASES:
        return host in _HUB_ALIASES
    return host == registry


class DockerConfig:
    """One config.json file (which may not exist yet)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self.data = data

    @classmethod
    def load(cls, path: Path | None = None, *, environ: Mapping[str, str] = os.environ) -> DockerConfig:
        path = path or config_path(environ)
        try:
            raw = path.read_text()
        except FileNotFoundError:
            return cls(path, {})
        except OSError as exc:
            raise WharfieError(f"cannot read docker config {path}: {exc.strerror}") from None
        try:
            data = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise WharfieError(f"invalid docker config {path}: {exc}") from None
        if not isinstance(data, dict):
            raise WharfieError(f"invalid docker config {path}: not a JSON object")
        return cls(path, data)

    def helper_for(self, registry: str) -> str | None:
        helpers = self.data.get("credHelpers") or {}
        for key, name in helpers.items():
            if _same_registry(key, registry) and name:
                return str(name)
        store = self.data.get("credsStore")
        return str(store) if store else None

    def get(self, registry: str) -> Credentials | None:
        """Credentials for `registry`: its helper (credHelpers, then credsStore), then `auths`."""
        helper = self.helper_for(registry)
        if helper:
            found = helper_get(helper, config_key(registry))
            if found is not None:
                return found
        for key, entry in (self.data.get("auths") or {}).items():
            if _same_registry(key, registry) and isinstance(entry, dict):
                found = _from_auth_entry(entry, self.path, key)
                if found is not None:
                    return found
        return None

    def store(self, registry: str, creds: Credentials) -> None:
        """Save `creds` as docker login would: in the helper if one is set, else base64 in `auths`."""
        helper = self.helper_for(registry)
        auths = self.data.setdefault("auths", {})
        if helper:
            helper_run(helper, "store", json.dumps(
                {"ServerURL": config_key(registry), "Username": creds.username, "Secret": creds.password}))
            auths[config_key(registry)] = {}  # docker keeps an empty entry so `docker info` lists it
        else:
            token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            auths[config_key(registry)] = {"auth": token}
        self.save()

    def erase(self, registry: str) -> bool:
        """Forget `registry`; returns whether anything was stored for it."""
        auths = self.data.get("auths") or {}
        keys = [k for k in auths if _same_registry(k, registry)]
        for key in keys:
            del auths[key]
        helper = self.helper_for(registry)
        erased = False
        if helper:
            try:
                helper_run(helper, "erase", config_key(registry))
                erased = True
            except WharfieError as exc:
                log.debug("credential helper erase: %s", exc)
        self.save()
        return bool(keys) or erased

    def save(self) -> None:
        """Write atomically with mode 0600 (the file holds secrets), keeping every other key."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".config.json.")
        try:
            with os.fdopen(fd, "w") as out:
                os.fchmod(out.fileno(), 0o600)
                json.dump(self.data, out, indent="\t")
                out.write("\n")
            os.replace(tmp, self.path)
        finally:
            Path(tmp).unlink(missing_ok=True)


def _from_auth_entry(entry: dict[str, Any], path: Path, key: str) -> Credentials | None:
    identity = entry.get("identitytoken") or None
    if entry.get("auth"):
        try:
            user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise WharfieError(f"invalid docker config {path}: the auth of {key!r} is not base64 user:password") from None
        if not sep:
            raise WharfieError(f"invalid docker config {path}: the auth of {key!r} has no ':'")
        return Credentials(user, password, identity)
    if entry.get("username") or identity:
        return Credentials(entry.get("username") or "", entry.get("password") or "", identity)
    return None


def helper_run(name: str, verb: str, stdin: str) -> str:
    """Run ``docker-credential-NAME VERB``; returns stdout. Errors name the helper, never the secret."""
    program = f"docker-credential-{name}"
    try:
        proc = subprocess.run([program, verb], input=stdin, capture_output=True, text=True,
                              timeout=_HELPER_TIMEOUT, check=False)
    except FileNotFoundError:
        raise WharfieError(f"credential helper {program} not found on PATH") from None
    except subprocess.TimeoutExpired:
        raise WharfieError(f"credential helper {program} {verb} timed out after {_HELPER_TIMEOUT:.0f}s") from None
    if proc.returncode != 0:
        # Helpers print only their own error text (not the secret) on failure.
        message = (proc.stdout.strip() or proc.stderr.strip() or f"exit status {proc.returncode}").splitlines()[0]
        raise WharfieError(f"credential helper {program} {verb} failed: {message[:200]}")
    return proc.stdout


def helper_get(name: str, server: str) -> Credentials | None:
    try:
        out = helper_run(name, "get", server)
    except WharfieError as exc:
        if "credentials not found" in str(exc).lower():
            return None
        raise
    try:
        data = json.loads(out)
        username, secret = str(data.get("Username") or ""), str(data.get("Secret") or "")
    except (ValueError, AttributeError):
        raise WharfieError(f"credential helper docker-credential-{name} get: output is not JSON") from None
    if not secret:
        return None
    if username == _TOKEN_USER:
        return Credentials("", "", identity_token=secret)
    return Credentials(username, secret)

