"""Which of the host's local routes become `unreachable` routes in a step's namespace (builder/execution/host_fence.py).

The fence itself is attacked in real builds in tests/security/test_attack_step_network.py; here, the choice of
prefixes, and the host's table read back as the kernel gives it.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from builder.execution import network
from builder.execution.host_fence import SLIRP_NETWORK, host_local_prefixes, is_fenced, prefixes_to_fence
from oci.own_addresses import CLOUD_METADATA


def test_interface_addresses_and_anyip_ranges_are_fenced_loopback_is_not() -> None:
    local = ["127.0.0.0/8", "127.0.0.1", "192.0.2.2", "::1", "fd00::2", "fe80::fc:ff:fe00:1", "198.51.100.0/24",
             "192.0.2.2"]
    assert prefixes_to_fence(local) == ("192.0.2.2/32", "fd00::2/128", "fe80::fc:ff:fe00:1/128", "198.51.100.0/24")


def test_addresses_inside_slirps_own_network_keep_the_steps_gateway_and_dns() -> None:
    # A host on VirtualBox's NAT has 10.0.2.15; a fence there, or on .2/.3/.100, would cut the step's own routing.
    inside = ["10.0.2.2", "10.0.2.3", "10.0.2.15", "10.0.2.100", "10.0.2.0/25"]
    assert prefixes_to_fence(inside) == ()
    # A wider AnyIP range is fenced: slirp's connected /24 is more specific and still wins inside the step.
    assert prefixes_to_fence(["10.0.0.0/8"]) == ("10.0.0.0/8",)
    assert str(SLIRP_NETWORK) == "10.0.2.0/24"


def test_cloud_metadata_is_fenced_on_every_host() -> None:
    """169.254.169.254 hands out the machine's credentials: fenced whether or not the host has a link-local address."""
    assert is_fenced("169.254.169.254") and is_fenced("169.254.0.1") and is_fenced("100.100.100.200")
    assert not is_fenced("198.51.100.7")


def test_the_hosts_table_holds_every_address_a_socket_can_bind() -> None:
    """The same kernel fact oci/own_addresses.py asks by bind(): each fenced /32 or /128 is bindable here."""
    prefixes = host_local_prefixes()
    singles = [ipaddress.ip_network(p) for p in prefixes if ipaddress.ip_network(p).num_addresses == 1]
    for single in singles:
        address = single.network_address
        if address.is_link_local or address in CLOUD_METADATA:
            continue  # binding a link-local IPv6 address needs its scope id; metadata services are not the host's
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((str(address), 0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as primary:
        try:
            primary.connect(("198.51.100.1", 9))  # no packet is sent: this only asks for the source address
        except OSError:
            return  # no route out of this host: no primary address to check
        source = primary.getsockname()[0]
    if not ipaddress.ip_address(source).is_loopback:
        assert f"{source}/32" in prefixes, "the address this host connects out from is fenced"


def test_a_resolver_on_the_hosts_own_address_is_not_handed_to_the_step(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """systemd-resolved's upstream on the host's own address (a local dnsmasq) is fenced: slirp's forwarder serves."""
    own = [p.split("/")[0] for p in host_local_prefixes() if p.endswith("/32")]
    if not own:
        pytest.skip("this host has no non-loopback IPv4 address")
    upstream = tmp_path / "resolv.conf"
    monkeypatch.setattr(network, "_RESOLVED_UPSTREAM", upstream)
    upstream.write_text(f"nameserver {own[0]}\n")
    assert network.step_resolv_conf("default", "nameserver 127.0.0.53\n") == f"nameserver {network.SLIRP_DNS}\n"
    upstream.write_text(f"nameserver {own[0]}\nnameserver 198.51.100.53\n")
    assert network.step_resolv_conf("default", "nameserver 127.0.0.53\n") == "nameserver 198.51.100.53\n"
