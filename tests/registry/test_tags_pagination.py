"""``Link`` pagination of tags/list, pinned with MockTransport (GitLab's registry pages; distribution 2.8 does not)."""

from __future__ import annotations

import httpx

from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.reference import parse_reference
from registry.tags import list_tags

PAGES = {
    "n=2": (["a", "b"], '</v2/g/p/tags/list?n=2&last=b>; rel="next"'),
    "n=2&last=b": (["c", "d"], '<https://reg.example/v2/g/p/tags/list?n=2&last=d>; rel="next"'),
    "n=2&last=d": (["e"], None),
}


def test_follows_relative_and_absolute_next_links():
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        query = request.url.query.decode()
        seen.append(f"{request.url.path}?{query}")
        tags, link = PAGES[query]
        return httpx.Response(200, json={"name": "g/p", "tags": tags}, headers={"Link": link} if link else {})

    with RegistryClient(RegistryOptions(use_docker_config=False), transport=httpx.MockTransport(handler)) as client:
        assert list_tags(client.session, parse_reference("reg.example/g/p"), page_size=2) == ["a", "b", "c", "d", "e"]
    assert seen == ["/v2/g/p/tags/list?n=2", "/v2/g/p/tags/list?n=2&last=b", "/v2/g/p/tags/list?n=2&last=d"]
