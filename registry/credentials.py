"""Which credentials to present to a registry: first match wins, as the issue orders them.

1. explicit (flags, API arguments);
2. GitLab CI variables: a job can push to its project's registry and pull
   through the dependency proxy with no set-up at all;
3. docker's config.json (`auths`, `credHelpers`, `credsStore`);
4. anonymous (None).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from registry.dockerconfig import Credentials, DockerConfig
from registry.reference import normalize_host

__all__ = ["Credentials", "gitlab_ci_credentials", "resolve_credentials"]

log = logging.getLogger(__name__)


def _host(value: str) -> str:
    """`CI_REGISTRY` may carry a scheme or the default port; compare bare hosts."""
    for scheme in ("https://", "http://"):
        value = value.removeprefix(scheme)
    value = value.split("/", 1)[0]
    return normalize_host(value.removesuffix(":443"))


def _pair(environ: Mapping[str, str], user_var: str, password_var: str) -> Credentials | None:
    user, password = environ.get(user_var), environ.get(password_var)
    if user and password:
        return Credentials(user, password)
    return None


def gitlab_ci_credentials(registry: str, environ: Mapping[str, str] = os.environ) -> Credentials | None:
    """Credentials GitLab CI hands every job for `registry`, if it is the job's registry or dependency proxy."""
    host = _host(registry)
    ci_registry = environ.get("CI_REGISTRY")
    if ci_registry and _host(ci_registry) == host:
        found = _pair(environ, "CI_REGISTRY_USER", "CI_REGISTRY_PASSWORD")
        if found is None and environ.get("CI_JOB_TOKEN"):
            found = Credentials("gitlab-ci-token", environ["CI_JOB_TOKEN"])
        if found is None:
            found = _pair(environ, "CI_DEPLOY_USER", "CI_DEPLOY_PASSWORD")
        if found is not None:
            return found
    proxy = environ.get("CI_DEPENDENCY_PROXY_SERVER")
    if proxy and _host(proxy) == host:
        found = _pair(environ, "CI_DEPENDENCY_PROXY_USER", "CI_DEPENDENCY_PROXY_PASSWORD")
        if found is not None:
            return found
    return None


def resolve_credentials(registry_host: str, *, explicit: Mapping[str, Credentials] | None = None,
                        environ: Mapping[str, str] = os.environ,
                        config: DockerConfig | None = None) -> Credentials | None:
    """The credentials for `registry_host` (as written in references, e.g. ``docker.io``, ``host:5000``).

    Returns None for anonymous access. `config` defaults to the config.json docker would read.
    """
    host = _host(registry_host)
    for key, creds in (explicit or {}).items():
        if _host(key) == host:
            log.debug("credentials for %s: explicit (user %s)", host, creds.username)
            return creds
    found = gitlab_ci_credentials(host, environ)
    if found is not None:
        log.debug("credentials for %s: GitLab CI variables (user %s)", host, found.username)
        return found
    config = config if config is not None else DockerConfig.load(environ=environ)
    found = config.get(host)
    if found is not None:
        log.debug("credentials for %s: %s (user %s)", host, config.path, found.username)
        return found
    log.debug("credentials for %s: anonymous", host)
    return None
