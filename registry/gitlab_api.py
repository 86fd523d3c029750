"""GitLab's REST API for the container registry: a project's repositories, tags with their push time, deletes.

The registry's own API knows neither when a tag was pushed nor which
repositories a project has (GitLab closes ``/v2/_catalog``); GitLab's REST API
(``doc/api/container_registry.md``) knows both. The endpoints used:

* ``GET    /projects/:id/registry/repositories?tags_count=true``
* ``GET    /projects/:id/registry/repositories/:repository_id/tags``
* ``GET    /projects/:id/registry/repositories/:repository_id/tags/:tag_name``  (digest, total_size, created_at)
* ``DELETE /projects/:id/registry/repositories/:repository_id/tags/:tag_name``
* ``DELETE /projects/:id/registry/repositories/:repository_id/tags``  (bulk: 202, done in the background)

``:id`` is a project id or its URL-encoded path (``group%2Fproject``). Lists
come in pages: the ``Link: <...>; rel="next"`` header is followed, else
``X-Next-Page``, and only on the API's own origin, since every request carries
the token. A token is a personal, project or group access token (sent as
``PRIVATE-TOKEN``) or a CI job's ``$CI_JOB_TOKEN`` (sent as ``JOB-TOKEN``);
no message, log or repr ever holds its value.

httpx, as everywhere in registry/; each request is one operation of the one
retry loop (registry/retry.py), which `is_temporary` decides for: a
`GitLabAPIError` is a `RegistryError`, so 429 and 5xx answers (with their
``Retry-After``) and unreachable hosts are tried again, nothing else.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import ssl
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import quote, urlsplit

import httpx

from oci.digest import Digest
from oci.errors import WharfieError
from oci.tls_trust import https_context
from registry.errors import RegistryError, RegistryUnreachableError, caused_by, parse_retry_after
from registry.retry import RetryPolicy, describe_http_error

__all__ = [
    "GitLabAPI",
    "GitLabAPIError",
    "GitLabRepository",
    "GitLabTag",
    "GitLabToken",
    "gitlab_token",
    "parse_gitlab_time",
]

log = logging.getLogger(__name__)

_MAX_PAGES = 10_000
_PER_PAGE = 100  # GitLab's maximum; its default is 20
_MAX_BODY = 4 << 20
_LINK_NEXT_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')
_MAX_MESSAGE = 300


class GitLabAPIError(RegistryError):
    """GitLab's API refused or failed a request; the message quotes GitLab's own words, never the token."""

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, retry_after=retry_after)


@dataclass(frozen=True)
class GitLabToken:
    """A token and how it is sent: `header` is ``PRIVATE-TOKEN`` or ``JOB-TOKEN``; `source` names where it came from."""

    header: str
    value: str = field(repr=False)
    source: str

    @property
    def kind(self) -> str:
        return "job token" if self.header == "JOB-TOKEN" else "access token"

    def describe(self) -> str:
        return f"{self.header} from {self.source}"

    def __repr__(self) -> str:
        return f"GitLabToken({self.describe()}, value=***)"

    __str__ = __repr__


def gitlab_token(flag: str | None, environ: Mapping[str, str]) -> GitLabToken | None:
    """The token to send: ``--gitlab-token``, else ``$GITLAB_TOKEN`` (both ``PRIVATE-TOKEN``), else ``$CI_JOB_TOKEN``."""
    if flag:
        return GitLabToken("PRIVATE-TOKEN", flag, "--gitlab-token")
    if environ.get("GITLAB_TOKEN"):
        return GitLabToken("PRIVATE-TOKEN", environ["GITLAB_TOKEN"], "$GITLAB_TOKEN")
    if environ.get("CI_JOB_TOKEN"):
        return GitLabToken("JOB-TOKEN", environ["CI_JOB_TOKEN"], "$CI_JOB_TOKEN")
    return None


@dataclass(frozen=True)
class GitLabRepository:
    """One container repository of a project: `path` is the image path (``group/project/app``)."""

    id: int
    name: str
    path: str
    location: str
    tags_count: int | None = None
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class GitLabTag:
    """A tag with GitLab's details: `created_at` is when the registry stored it, not a date the build chose."""

    name: str
    digest: Digest | None = None
    total_size: int | None = None
    created_at: dt.datetime | None = None
    location: str = ""


def parse_gitlab_time(value: Any) -> dt.datetime | None:
    """GitLab's ISO 8601 times (``2019-01-06T16:49:51.272+00:00`` or ``...Z``); None if absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip().replace("Z", "+00:00"))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _path(url: str) -> str:
    """The path as sent (``group%2Fproject`` stays one segment), for messages: no query, no host."""
    return urlsplit(url).path


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _digest(value: Any) -> Digest | None:
    try:
        return Digest.parse(value) if isinstance(value, str) else None
    except WharfieError:
        return None


_HINTS = {
    (401, "PRIVATE-TOKEN"): "the access token was not accepted: it may be mistyped, expired or revoked "
                            "(a deploy token cannot use this API at all: it only pulls and pushes images)",
    (401, "JOB-TOKEN"): "the job token was not accepted: a job token is valid only while its job runs",
    (401, None): "no token was sent: give --gitlab-token or $GITLAB_TOKEN, or run in a CI job ($CI_JOB_TOKEN)",
    (403, "PRIVATE-TOKEN"): "an access token needs the read_api scope to list and the api scope to delete, "
                            "and its user at least the Developer role in the project to delete tags",
    (403, "JOB-TOKEN"): "a job token may use the container registry API of its own project only, with the "
                        "role of the user who started the pipeline (Developer or more to delete tags)",
    (404, None): "no such project or repository, or the token may not see it",
}


class GitLabAPI:
    """A client of one GitLab instance's REST API (``https://gitlab.example.com/api/v4``)."""

    def __init__(self, base_url: str, token: GitLabToken | None, *, verify: ssl.SSLContext | bool = True,
                 retries: int = 3, timeout: float = 30.0, concurrency: int = 4,
                 transport: httpx.BaseTransport | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.concurrency = max(1, concurrency)
        self._origin = httpx.URL(self.base_url)
        headers = {"User-Agent": "wharfie/0.1", "Accept": "application/json"}
        if token is not None:
            headers[token.header] = token.value
        self._policy = RetryPolicy(retries=retries, sleep=sleep)
        if verify is True:  # wharfie's trust, not httpx's default (oci/tls_trust.py says why)
            verify = https_context()
        self._client = httpx.Client(transport=transport or httpx.HTTPTransport(verify=verify),
                                    headers=headers, timeout=timeout, follow_redirects=False)

    def describe(self) -> str:
        auth = self.token.describe() if self.token else "no token"
        return f"GitLab's REST API at {self.base_url} ({auth})"

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------

    def _url(self, *segments: str | int) -> str:
        return self.base_url + "/" + "/".join(quote(str(s), safe="") for s in segments)

    def _send(self, method: str, url: str, *, params: Mapping[str, str] | None = None,
              data: Mapping[str, str] | None = None, ok: tuple[int, ...] = (200,)) -> _Answer:
        """One request, tried again by the retry loop when `is_temporary` says so."""
        what = f"{method} {_path(url)}"
        try:
            return self._policy.run(lambda: self._attempt(method, url, params, data, ok, what),
                                    what=f"GitLab API {what}")
        except RegistryUnreachableError as exc:  # callers handle GitLab's failures as GitLabAPIError
            raise GitLabAPIError(str(exc)) from None

    def _attempt(self, method: str, url: str, params: Mapping[str, str] | None, data: Mapping[str, str] | None,
                 ok: tuple[int, ...], what: str) -> _Answer:
        request = self._client.build_request(method, url, params=params, data=data)
        try:
            response = self._client.send(request, stream=True)
            try:
                body = _read_capped(response)
            finally:
                response.close()
        except httpx.TransportError as exc:
            raise RegistryUnreachableError(f"GitLab API at {self.base_url} unreachable ({what}): "
                                           f"{describe_http_error(exc)}", tls=caused_by(exc, ssl.SSLError)) from None
        if body is None:
            raise GitLabAPIError(f"GitLab API answer to {what} is larger than {_MAX_BODY} bytes")
        answer = _Answer(response, body)
        if response.status_code not in ok:
            raise self._error(answer, what)
        return answer

    def _error(self, answer: _Answer, what: str) -> GitLabAPIError:
        status = answer.response.status_code
        words = self._clean(_gitlab_words(answer) or answer.response.reason_phrase or "").rstrip(".")
        header = self.token.header if self.token else None
        hint = _HINTS.get((status, header)) or _HINTS.get((status, None))
        sent = f" with {self.token.describe()}" if self.token else ""
        text = f"GitLab API refused {what}{sent}: {status} {words}".rstrip()
        if words.startswith(str(status)):
            text = f"GitLab API refused {what}{sent}: {words}"
        return GitLabAPIError(f"{text}; {hint}" if hint else text, status=status,
                              retry_after=parse_retry_after(answer.response.headers.get("retry-after")))

    def _clean(self, text: str) -> str:
        """One printable line, clipped, and never the token (a hostile server could echo it)."""
        text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
        if self.token is not None and self.token.value:
            text = text.replace(self.token.value, "***")
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE - 3] + "..."

    def _json(self, answer: _Answer, what: str) -> Any:
        try:
            return json.loads(answer.body)
        except ValueError:
            raise GitLabAPIError(f"GitLab API answered {what} with something that is not JSON") from None

    def _next_page(self, response: httpx.Response, url: str, params: dict[str, str]) -> tuple[str, dict[str, str]] | None:
        """Where the next page is: ``Link rel=next`` on our own origin, else ``X-Next-Page``; None on the last."""
        match = _LINK_NEXT_RE.search(response.headers.get("link", ""))
        if match:
            link = httpx.URL(match.group(1))
            if (link.scheme, link.host, link.port) == (self._origin.scheme, self._origin.host, self._origin.port):
                return str(link), {}
            log.warning("warning: GitLab API sent a next-page link to another origin (%s): not followed", link.host)
        next_page = response.headers.get("x-next-page", "").strip()
        if next_page.isdigit():
            return url, {**params, "page": next_page}
        if match:
            raise GitLabAPIError(f"GitLab API answer to GET {_path(url)} points its next page elsewhere "
                                 f"({httpx.URL(match.group(1)).host}): not followed, the token would go with it")
        return None

    def _get_all(self, url: str, params: Mapping[str, str], *, per_page: int | None = None) -> list[dict[str, Any]]:
        query = {**params, "per_page": str(per_page or _PER_PAGE)}
        what = f"GET {_path(url)}"
        items: list[dict[str, Any]] = []
        for _ in range(_MAX_PAGES):
            answer = self._send("GET", url, params=query or None)
            page = self._json(answer, what)
            if not isinstance(page, list):
                raise GitLabAPIError(f"GitLab API answered {what} with {type(page).__name__}, not a list")
            items.extend(item for item in page if isinstance(item, dict))
            following = self._next_page(answer.response, url, query)
            if following is None:
                return items
            url, query = following
        raise GitLabAPIError(f"{what}: more than {_MAX_PAGES} pages")

    # -- endpoints ----------------------------------------------------------

    def _project(self, project: str | int) -> str:
        return str(project).strip("/")

    def repositories(self, project: str | int, *, per_page: int | None = None) -> list[GitLabRepository]:
        """``GET /projects/:id/registry/repositories?tags_count=true``: every repository of `project`."""
        url = self._url("projects", self._project(project), "registry", "repositories")
        out = []
        for item in self._get_all(url, {"tags_count": "true"}, per_page=per_page):
            repo_id = _int(item.get("id"))
            if repo_id is None:
                continue
            out.append(GitLabRepository(repo_id, _str(item.get("name")), _str(item.get("path")),
                                        _str(item.get("location")), _int(item.get("tags_count")),
                                        parse_gitlab_time(item.get("created_at"))))
        return out

    def tag_names(self, project: str | int, repository_id: int, *, per_page: int | None = None) -> list[str]:
        """``GET .../repositories/:repository_id/tags``: the names (the list carries no dates)."""
        url = self._url("projects", self._project(project), "registry", "repositories", repository_id, "tags")
        return [name for item in self._get_all(url, {}, per_page=per_page)
                if isinstance(name := item.get("name"), str) and name]

    def tag(self, project: str | int, repository_id: int, name: str) -> GitLabTag:
        """``GET .../tags/:tag_name``: digest, total size and ``created_at``."""
        url = self._url("projects", self._project(project), "registry", "repositories", repository_id, "tags", name)
        item = self._json(self._send("GET", url), f"GET {_path(url)}")
        if not isinstance(item, dict):
            raise GitLabAPIError(f"GitLab API answered GET {_path(url)} with something not an object")
        return GitLabTag(name, _digest(item.get("digest")), _int(item.get("total_size")),
                         parse_gitlab_time(item.get("created_at")), _str(item.get("location")))

    def tags(self, project: str | int, repository_id: int, *, per_page: int | None = None) -> list[GitLabTag]:
        """Every tag with its details (one request per tag, `concurrency` at a time), in the list's order.

        A tag deleted between the list and its details is left out, as the next list would.
        """
        names = self.tag_names(project, repository_id, per_page=per_page)

        def details(name: str) -> GitLabTag | None:
            try:
                return self.tag(project, repository_id, name)
            except GitLabAPIError as exc:
                if exc.status == 404:  # deleted between the list and now
                    return None
                raise

        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            return [tag for tag in pool.map(details, names) if tag is not None]

    def delete_tag(self, project: str | int, repository_id: int, name: str) -> None:
        """``DELETE .../tags/:tag_name``: this tag only (GitLab refuses a protected one with 403)."""
        url = self._url("projects", self._project(project), "registry", "repositories", repository_id, "tags", name)
        self._send("DELETE", url, ok=(200, 202, 204))

    def bulk_delete(self, project: str | int, repository_id: int, *, name_regex_delete: str,
                    name_regex_keep: str | None = None, keep_n: int | None = None,
                    older_than: str | None = None) -> None:
        """``DELETE .../tags`` with GitLab's policy parameters; GitLab answers 202 and deletes in the background."""
        url = self._url("projects", self._project(project), "registry", "repositories", repository_id, "tags")
        form = {"name_regex_delete": name_regex_delete}
        if name_regex_keep is not None:
            form["name_regex_keep"] = name_regex_keep
        if keep_n is not None:
            form["keep_n"] = str(keep_n)
        if older_than is not None:
            form["older_than"] = older_than
        self._send("DELETE", url, data=form, ok=(200, 202, 204))


def _read_capped(response: httpx.Response) -> bytes | None:
    """The body, or None past `_MAX_BODY` (a page of 100 tags is a few KiB; a hostile answer must not fill memory)."""
    chunks, total = [], 0
    for chunk in response.iter_bytes():
        total += len(chunk)
        if total > _MAX_BODY:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


@dataclass(frozen=True)
class _Answer:
    response: httpx.Response
    body: bytes


def _gitlab_words(answer: _Answer) -> str:
    """GitLab's error text: ``{"message": ...}`` or ``{"error": ..., "error_description": ...}``."""
    try:
        data = json.loads(answer.body)
    except ValueError:
        plain = answer.response.headers.get("content-type", "").startswith("text/plain")
        return answer.body[:_MAX_MESSAGE].decode(errors="replace") if plain else ""
    if not isinstance(data, dict):
        return ""
    message = data.get("message")
    if isinstance(message, str):
        return message
    if isinstance(message, dict):  # validation errors: {"message": {"field": ["is invalid"]}}
        return "; ".join(f"{key} {', '.join(map(str, value)) if isinstance(value, list) else value}"
                         for key, value in message.items())
    error, description = data.get("error"), data.get("error_description")
    if isinstance(error, str):
        return f"{error}: {description}" if isinstance(description, str) else error
    return ""
