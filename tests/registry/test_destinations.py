"""registry/destinations.py: where a registry may lead wharfie's connections, decided per connection.

Names are resolved through a table the test controls (DNS answers that change
between connections are the rebinding attack); the addresses' kinds are the
real rule (oci/own_addresses.py). 192.0.2.0/24 (TEST-NET-1) stands for
"elsewhere": no host has it.
"""

from __future__ import annotations

import pytest

import registry.destinations
from fixtures.net import host_interface_address
from registry.destinations import RegistryDestinations
from registry.errors import RefusedDestinationError

ELSEWHERE = "192.0.2.10"


class _Dns:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str]] = {}
        monkeypatch.setattr(registry.destinations, "resolve", self.resolve)

    def resolve(self, host: str, port: int) -> list[str]:
        host = host.strip("[]")
        return self.answers.get(host, [host])  # an IP literal resolves to itself


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> _Dns:
    return _Dns(monkeypatch)


def _interface_address() -> str:
    address = host_interface_address()
    if address is None:
        pytest.skip("this host has no non-loopback IPv4 address")
    return address


@pytest.mark.parametrize("destination", ["127.0.0.1", "::1", "169.254.169.254", "0.0.0.0", "::ffff:127.0.0.1",
                                         "fd00:ec2::254", "100.100.100.200"])
def test_a_registry_elsewhere_may_not_lead_to_the_hosts_own_addresses(dns: _Dns, destination: str) -> None:
    dns.answers["evil.example"] = [ELSEWHERE]
    guard = RegistryDestinations("evil.example")
    assert guard.addresses("evil.example", 443) == [ELSEWHERE]
    with pytest.raises(RefusedDestinationError, match=r"^refused to follow evil\.example to .*; a registry elsewhere"):
        guard.addresses(destination, 80)


def test_a_registry_elsewhere_may_lead_elsewhere(dns: _Dns) -> None:
    dns.answers["registry.example"] = [ELSEWHERE]
    dns.answers["storage.example"] = ["192.0.2.20"]
    guard = RegistryDestinations("registry.example")
    assert guard.addresses("storage.example", 443) == ["192.0.2.20"]


def test_a_redirect_to_a_name_is_judged_by_every_address_it_resolves_to(dns: _Dns) -> None:
    dns.answers["evil.example"] = [ELSEWHERE]
    dns.answers["sneaky.example"] = ["192.0.2.20", "127.0.0.1"]
    with pytest.raises(RefusedDestinationError, match=r"sneaky\.example:80 \(127\.0\.0\.1\): a loopback address"):
        RegistryDestinations("evil.example").addresses("sneaky.example", 80)


def test_a_registry_on_the_loopback_may_lead_to_any_of_the_hosts_own_addresses(dns: _Dns) -> None:
    """The test bed, GitLab's development kit: registry on localhost, realm on another local address."""
    dns.answers["localhost"] = ["127.0.0.1", "::1"]
    guard = RegistryDestinations("localhost:5000")
    assert guard.addresses("localhost", 5000) == ["127.0.0.1", "::1"]
    for destination in ("127.0.0.1", "::1", _interface_address(), ELSEWHERE):
        assert guard.addresses(destination, 8080) == [destination]


def test_a_registry_on_the_hosts_network_address_may_not_lead_to_the_loopback(dns: _Dns) -> None:
    interface = _interface_address()
    guard = RegistryDestinations(f"{interface}:5000")
    assert guard.addresses(interface, 5001) == [interface]  # its realm beside it
    with pytest.raises(RefusedDestinationError, match=r"a registry on an address of this host may lead only"):
        guard.addresses("127.0.0.1", 8080)


def test_a_name_that_resolved_elsewhere_may_not_rebind_to_the_loopback(dns: _Dns) -> None:
    dns.answers["evil.example"] = [ELSEWHERE]
    guard = RegistryDestinations("evil.example")
    assert guard.addresses("evil.example", 443) == [ELSEWHERE]
    dns.answers["evil.example"] = ["127.0.0.1"]
    with pytest.raises(RefusedDestinationError, match=r"resolved elsewhere before"):
        guard.addresses("evil.example", 443)


def test_a_local_registry_stays_at_the_addresses_it_first_resolved_to(dns: _Dns) -> None:
    """Else a name could first look local (trusted to lead to the loopback), then hand over to a server elsewhere."""
    dns.answers["registry.local"] = ["127.0.0.1"]
    guard = RegistryDestinations("registry.local:5000")
    assert guard.addresses("registry.local", 5000) == ["127.0.0.1"]
    dns.answers["registry.local"] = [ELSEWHERE]
    assert guard.addresses("REGISTRY.local", 5000) == ["127.0.0.1"]


def test_a_name_that_resolves_both_here_and_elsewhere_is_refused(dns: _Dns) -> None:
    dns.answers["both.example"] = [ELSEWHERE, "127.0.0.1"]
    with pytest.raises(RefusedDestinationError, match=r"resolves both elsewhere and to this host \(127\.0\.0\.1\)"):
        RegistryDestinations("both.example").addresses("both.example", 443)


def test_docker_hub_is_judged_by_its_api_host(dns: _Dns) -> None:
    dns.answers["registry-1.docker.io"] = [ELSEWHERE]
    guard = RegistryDestinations("docker.io")
    assert guard.addresses("registry-1.docker.io", 443) == [ELSEWHERE]
    with pytest.raises(RefusedDestinationError):
        guard.addresses("127.0.0.1", 443)
