"""Hand-written semantic assertions: what the shop policy means, independent of nft text."""

from __future__ import annotations

import ipaddress as ip

from podwall.model import Inventory, NetMode
from podwall.policy.load import parse_policy_text
from podwall.policy.semantics import Decider, GrantKind, grants, resolve, topology_block
from tests.unit.invbuild import SHOP_POLICY, container, network, shop

A = ip.ip_address
TCP, UDP, ICMP = 6, 17, 1


def res_shop():  # type: ignore[no-untyped-def]
    return resolve(parse_policy_text(SHOP_POLICY, "p.yaml").policy, shop())


def test_membership_unmatched_and_unenforceable() -> None:
    r = res_shop()
    assert r.members["web"] == ("web",)
    assert r.members["api"] == ("api", "hostnet")  # by label, even on the host network
    assert r.unmatched == ("stray",)
    assert r.unenforceable == (("hostnet", "host network: its traffic is the host's own"),)
    u1 = r.endpoint_of("u1")
    assert u1 is not None and not u1.managed


def test_web_reaches_api_on_8080_and_nothing_else() -> None:
    d = Decider(res_shop())
    web, api = A("10.89.1.2"), A("10.89.1.3")
    assert d.forward(web, api, TCP, 8080)[1] is not None
    for proto, port in ((TCP, 8081), (TCP, 22), (UDP, 8080), (ICMP, 0)):
        subject, g = d.forward(web, api, proto, port)
        assert subject and g is None, (proto, port)
    assert d.forward(api, web, TCP, 8080) == (True, None)  # flows are one-way


def test_unmatched_and_unmanaged() -> None:
    d = Decider(res_shop())
    stray, web, u1 = A("10.89.1.9"), A("10.89.1.2"), A("10.88.0.5")
    assert d.forward(stray, web, TCP, 8080) == (True, None)
    assert d.forward(web, stray, TCP, 8080) == (True, None)
    assert d.forward(u1, web, TCP, 8080) == (True, None)  # unmanaged → managed: denied
    assert d.forward(u1, A("10.88.0.6"), TCP, 8080) == (False, None)  # not subject at all
    # an unknown address on a managed bridge (a container podwall has not seen yet) gains nothing
    assert d.forward(A("10.89.1.77"), web, TCP, 8080) == (True, None)


def test_host_world_cidr_and_dns() -> None:
    d = Decider(res_shop())
    web, api, db = A("10.89.1.2"), A("10.89.1.3"), A("10.89.2.4")
    gw = A("10.89.1.1")
    assert d.to_host(web, gw, TCP, 9100)[1] is not None
    assert d.to_host(web, gw, TCP, 22)[1] is None
    assert d.to_host(web, gw, UDP, 53)[2]  # DNS to the gateway is always allowed
    assert d.forward(api, A("203.0.113.7"), TCP, 443)[1] is not None
    assert d.forward(api, A("203.0.114.7"), TCP, 443)[1] is None
    assert d.forward(db, A("198.51.100.1"), ICMP, 0)[1] is not None  # to: world, no ports: everything
    assert d.forward(db, A("10.88.0.5"), TCP, 80)[1] is None  # a Podman subnet is not `world`
    # world → web only after DNAT, on the container port
    assert d.forward(A("198.51.100.1"), web, TCP, 443, dnat=True)[1] is not None
    assert d.forward(A("198.51.100.1"), web, TCP, 443, dnat=False)[1] is None
    assert d.forward(A("10.88.0.5"), web, TCP, 443, dnat=True)[1] is None  # a container is not world


def test_pod_members_share_rights() -> None:
    inv = Inventory(
        containers=(
            container("pod-infra", ("front", "10.89.1.20"), pod="p", infra=True),
            container("web-1", mode=NetMode.POD, target="p", pod="p"),
            container("sidecar", mode=NetMode.POD, target="p", pod="p"),
            container("api", ("front", "10.89.1.3"), labels={"app": "api"}),
        ),
        networks=(network("front"), network("back")),
    )
    r = resolve(parse_policy_text(SHOP_POLICY, "p.yaml").policy, inv)
    ep = r.endpoint_of("sidecar")
    assert ep is not None and ep.workloads == {"web"} and ep.v4 == (A("10.89.1.20"),)
    assert ep.display == "sidecar" or ep.display == "web-1"
    assert r.unmatched == ()
    assert Decider(r).forward(A("10.89.1.20"), A("10.89.1.3"), TCP, 8080)[1] is not None


def test_container_sharing_follows_target() -> None:
    inv = Inventory(
        containers=(
            container("web", ("front", "10.89.1.2")),
            container("helper", mode=NetMode.CONTAINER, target="id-web"),
        ),
        networks=(network("front"),),
    )
    r = resolve(parse_policy_text(SHOP_POLICY, "p.yaml").policy, inv)
    ep = r.endpoint_of("helper")
    assert ep is not None and ep.key == "web"


def test_netavark_isolation_is_modelled() -> None:
    r = res_shop()
    assert topology_block(r, "front", "back") == "netavark: back is internal"
    assert topology_block(r, "front", "front") is None
    r2 = resolve(r.policy, Inventory(networks=(network("front", isolate="true"), network("plain", isolate="true"))))
    assert topology_block(r2, "front", "plain") is not None
    r3 = resolve(r.policy, Inventory(networks=(network("front", isolate="true"), network("plain"))))
    assert topology_block(r3, "front", "plain") is None


def test_no_grant_for_self_and_none_for_unenforceable() -> None:
    gs = grants(res_shop())
    assert all(g.src != g.dst for g in gs if g.kind is GrantKind.C2C)
    hostnet_addrs = set()
    assert not any(g.src in hostnet_addrs for g in gs)
    kinds = {g.kind for g in gs}
    assert kinds == set(GrantKind) - {GrantKind.NET2C}


def test_ipv6_grants_use_v6_addresses() -> None:
    inv = Inventory(
        containers=(
            container("web", ("dual", "10.89.3.2"), ("dual", "fd00:3::2")),
            container("api", ("dual", "10.89.3.3"), ("dual", "fd00:3::3"), labels={"app": "api"}),
        ),
        networks=(network("dual"),),
    )
    r = resolve(parse_policy_text(SHOP_POLICY, "p.yaml").policy, inv)
    d = Decider(r)
    assert d.forward(A("fd00:3::2"), A("fd00:3::3"), TCP, 8080)[1] is not None
    assert d.forward(A("fe80::1"), A("fd00:3::3"), TCP, 8080) == (True, None)


def test_plan_names_the_published_port_behind_world_flows_and_warns_when_none() -> None:
    import dataclasses

    from podwall.model import PortMapping
    from podwall.policy.semantics import world_ingress

    r = res_shop()
    ingress, missing = world_ingress(r)
    assert ingress == [] and [i for i, _ in missing] == [2]  # web publishes nothing yet
    inv = shop()
    web = dataclasses.replace(inv.containers[0], ports=(PortMapping(443, "tcp", 8443, ""), PortMapping(80, "tcp", 8080)))
    r2 = resolve(r.policy, dataclasses.replace(inv, containers=(web, *inv.containers[1:])))
    ingress, missing = world_ingress(r2)
    assert [(g.host_port, g.container_port, g.container) for g in ingress] == [(8443, 443, "web")] and not missing


def test_flows_that_netavark_makes_impossible_are_reported() -> None:
    from podwall.policy.semantics import impossible_flows

    text = SHOP_POLICY + "  - {from: web, to: db, ports: ['5432/tcp']}\n"
    r = resolve(parse_policy_text(text, "p.yaml").policy, shop())
    assert impossible_flows(r) == [
        (5, "db → world cannot happen here: its networks are all internal"),
        (6, "web → db cannot happen here: netavark: back is internal"),
    ]
