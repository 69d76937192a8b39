"""Regression tests for holes found in review: each names the scenario it closes."""

from __future__ import annotations

import dataclasses
import ipaddress as ip

import pytest

from podwall.errors import InputError
from podwall.model import Inventory, Network, Subnet
from podwall.nft.compile import compile_ruleset
from podwall.nft.conntrack import CtEntry, parse, to_cut
from podwall.podman.live import with_dns_tcp
from podwall.policy.load import parse_policy_text
from podwall.policy.semantics import Decider, dns_gateways, resolve
from tests.unit.invbuild import SHOP_POLICY, container, network, shop

A = ip.ip_address
TCP, UDP = 6, 17


def res(text: str = SHOP_POLICY, inv: Inventory | None = None):  # type: ignore[no-untyped-def]
    return resolve(parse_policy_text(text, "p.yaml").policy, inv or shop())


def entry(src: str, dst: str, dport: int, *, proto: str = "tcp", real_dst: str | None = None,
          real_dport: int | None = None) -> CtEntry:
    return CtEntry(4, proto, A(src), A(dst), 40000, dport, A(real_dst or dst), real_dport or dport,
                   {"tcp": 6, "udp": 17}.get(proto, 0))


def test_audit_mode_cuts_nothing() -> None:
    r = res(SHOP_POLICY.replace("version: 1\n", "version: 1\nmode: audit\n"))
    e = entry("10.89.1.9", "10.89.1.2", 8080)  # stray → web: denied by the policy
    assert to_cut([e], Decider(r), set()) == []
    assert to_cut([e], Decider(res()), set()) == [e]


def test_dns_dnat_to_aardvark_port_is_not_cut() -> None:
    gw = "10.89.1.1"
    e = entry("10.89.1.2", gw, 53, proto="udp", real_dport=1153)
    assert to_cut([e], Decider(res()), {A(gw)}) == []


def test_dns_only_to_the_own_networks_gateway_and_tcp_only_with_aardvark_tcp() -> None:
    d = Decider(res())
    web = A("10.89.1.2")
    assert d.to_host(web, A("10.89.1.1"), UDP, 53)[2]
    assert not d.to_host(web, A("10.89.2.1"), UDP, 53)[2]  # another network's gateway
    assert not d.to_host(web, A("10.89.1.1"), TCP, 53)[2]  # aardvark 1.4 does not listen on TCP
    inv = shop()
    inv = dataclasses.replace(inv, networks=tuple(
        dataclasses.replace(n, dns_tcp=True) if n.name == "front" else n for n in inv.networks))
    assert Decider(res(inv=inv)).to_host(web, A("10.89.1.1"), TCP, 53)[2]
    t = compile_ruleset(res(inv=inv)).table
    assert 'meta l4proto tcp ip daddr . iifname @dnstcp4' in t
    assert '10.89.1.1 . "podman1"' in t[t.index("set dnstcp4"):t.index("set denied4")]


def test_dns_tcp_follows_aardvark_and_each_networks_dns() -> None:
    inv = dataclasses.replace(shop(), networks=(network("front"), network("back", dns=False)))
    assert {n.name: n.dns_tcp for n in with_dns_tcp(inv, True).networks} == {"front": True, "back": False}
    assert not any(n.dns_tcp for n in with_dns_tcp(inv, False).networks)


def test_workload_on_unmanaged_network_keeps_its_dns() -> None:
    text = SHOP_POLICY + ""
    inv = dataclasses.replace(shop(), containers=(*shop().containers, container("web-2", ("plain", "10.88.0.9"))))
    gws = {(str(d.gateway), d.interface) for d in dns_gateways(res(text, inv))}
    assert ("10.88.0.1", "podman0") in gws


def test_broadcast_multicast_link_local_are_never_world() -> None:
    d = Decider(res())
    db = A("10.89.2.4")  # has `to: world` with no ports
    assert d.forward(db, A("198.51.100.1"), UDP, 5000)[1] is not None
    for dst in ("255.255.255.255", "224.0.0.251", "169.254.1.1"):
        assert d.forward(db, A(dst), UDP, 5000) == (True, None), dst
    t = compile_ruleset(res()).table
    assert "oifname != @podman_ifaces ip daddr != @podman_subnets4 ip daddr != { 224.0.0.0/4" in t


def test_macvlan_network_never_becomes_a_managed_interface() -> None:
    inv = dataclasses.replace(shop(), networks=(
        network("front"), Network("back", driver="macvlan", interface="eth0",
                                  subnets=(Subnet(ip.ip_network("10.89.2.0/24"), A("10.89.2.1")),))))
    t = compile_ruleset(res(inv=inv)).table
    assert '"eth0"' not in t


@pytest.mark.parametrize("cidr", ["fe80::%x } ; flush ruleset/64", "fe80::%eth0/64"])
def test_scope_ids_in_cidrs_are_refused(cidr: str) -> None:
    with pytest.raises(InputError, match="scope ids"):
        parse_policy_text(f"version: 1\nworkloads: {{a: {{containers: [a]}}}}\nflows:\n"
                          f"  - {{from: a, to: {{cidr: '{cidr}'}}}}\n", "p.yaml")
    with pytest.raises(InputError, match="scope ids"):
        parse_policy_text(f"version: 1\nnetworks:\n  n: {{subnet: '{cidr}'}}\n", "p.yaml")


def test_conntrack_parse_keeps_other_protocols() -> None:
    text = ("gre      47 29 src=10.89.1.9 dst=10.89.1.2 srckey=0x0 dstkey=0x0 src=10.89.1.2 dst=10.89.1.9 "
            "srckey=0x0 dstkey=0x0 mark=0 use=1\n"
            "unknown  2 530 src=10.89.1.9 dst=224.0.0.22 [UNREPLIED] src=224.0.0.22 dst=10.89.1.9 mark=0 use=1\n")
    es = parse(text)
    assert [(e.proto, e.proto_num) for e in es] == [("47", 47), ("2", 2)]
    assert es[0] in to_cut(es, Decider(res()), set())  # stray: no protocol is allowed
