"""The live inventory against real containers: it must contain exactly what the test created."""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys

import pytest

from podwall.model import Container, Inventory, NetMode
from podwall.podman import live, networks
from podwall.podman.netns import NetnsError, is_host_netns, netns_path
from tests.podman_util import Scenario, podman

pytestmark = pytest.mark.e2e

SLEEP = ("sleep", "3600")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ours(inv: Inventory, sc: Scenario) -> dict[str, Container]:
    """The scenario's containers, pod infra (named by Podman, not by us) included."""
    p = f"{sc.prefix}-"
    return {c.name: c for c in inv.containers if c.name.startswith(p) or (c.pod or "").startswith(p)}


@pytest.fixture
def exposures(scenario: Scenario) -> tuple[Scenario, int]:
    """One of each case issue 2 names: host network, container: sharing, 0.0.0.0 port, NET_ADMIN, plain
    custom network, and a pod."""
    sc = scenario
    port = free_port()
    net = sc.network("net")
    sc.run("web", "--network", net, "-p", f"0.0.0.0:{port}:8080", "--label", "app=web")
    sc.run("hostnet", "--network", "host", cmd=SLEEP)
    sc.run("sidecar", "--network", f"container:{sc.n('web')}", cmd=SLEEP)
    sc.run("admin", "--network", net, "--cap-add", "NET_ADMIN", cmd=SLEEP)
    sc.pod("pod", "--network", net)
    sc.run("member", "--pod", sc.n("pod"), cmd=SLEEP)
    return sc, port


def test_live_inventory_has_exactly_what_was_created(exposures: tuple[Scenario, int]) -> None:
    sc, port = exposures
    inv = live.read_inventory()
    got = ours(inv, sc)
    infra = [c for c in got.values() if c.infra]
    assert len(infra) == 1, got.keys()
    assert set(got) == {sc.n(x) for x in ("web", "hostnet", "sidecar", "admin", "member")} | {infra[0].name}

    net = inv.network(sc.n("net"))
    assert net is not None and net.driver == "bridge" and not net.internal and net.isolate is None
    assert not net.isolated and net.subnets and net.interface
    (subnet,) = net.subnets

    web = got[sc.n("web")]
    assert web.network_mode is NetMode.BRIDGE and web.network_names == (net.name,)
    assert web.running and web.pid and not web.rootless
    assert web.labels.get("app") == "web"
    assert [(p.host_port, p.container_port, p.protocol, p.all_interfaces) for p in web.ports] == [
        (port, 8080, "tcp", True)
    ]
    att = web.networks[0]
    assert att.ipv4 and att.ipv4[0] in subnet.cidr and att.gateway4 == subnet.gateway
    assert att.interface == "eth0"  # read from the container's own sysfs
    assert sc.ip(sc.n("web")) == str(att.ipv4[0])

    hostnet = got[sc.n("hostnet")]
    assert hostnet.network_mode is NetMode.HOST and hostnet.networks == () and hostnet.ports == ()

    side = got[sc.n("sidecar")]
    assert side.network_mode is NetMode.CONTAINER and side.mode_target == web.name
    assert side.addresses == web.addresses

    admin = got[sc.n("admin")]
    assert "NET_ADMIN" in admin.cap_add and not admin.privileged
    assert "NET_ADMIN" not in web.cap_add

    member = got[sc.n("member")]
    assert member.network_mode is NetMode.POD and member.pod == sc.n("pod") == member.mode_target
    assert infra[0].pod == sc.n("pod") and infra[0].network_names == (net.name,)
    assert member.addresses == infra[0].addresses and member.addresses


def test_namespaces_resolve_and_host_is_refused(exposures: tuple[Scenario, int]) -> None:
    sc, _ = exposures
    got = ours(live.read_inventory(), sc)
    web = got[sc.n("web")]
    path = netns_path(web)
    assert not is_host_netns(path)
    assert os.stat(path).st_ino == os.stat(f"/proc/{sc.pid(web.name)}/ns/net").st_ino
    assert netns_path(got[sc.n("sidecar")]) == path  # one namespace, one path
    with pytest.raises(NetnsError, match="host network"):
        netns_path(got[sc.n("hostnet")])


def test_create_and_remove_network(scenario: Scenario) -> None:
    name = scenario.n("made")
    scenario.networks.append(name)  # cleaned up even if an assertion fails
    n = networks.create_network(name, ["10.231.99.0/24"], internal=True)
    assert n.name == name and n.internal and n.isolate is None
    assert [str(s.cidr) for s in n.subnets] == ["10.231.99.0/24"]
    assert str(n.subnets[0].gateway) == "10.231.99.1"
    again = live.read_inventory().network(name)
    assert again == n
    assert networks.remove_network(name) is True
    assert networks.remove_network(name) is False  # already gone: fine
    assert live.read_inventory().network(name) is None


def test_strict_isolation_is_explained_or_applied(scenario: Scenario) -> None:
    name = scenario.n("strict")
    scenario.networks.append(name)
    version = json.loads(podman("version", "--format", "json").stdout)["Client"]["Version"]
    if tuple(int(x) for x in version.split(".")[:2]) >= (4, 7):
        assert networks.create_network(name, isolate_strict=True).isolate == "strict"
    else:
        with pytest.raises(networks.NetworkCreateFailed, match=r"isolate=strict needs Podman >= 4.7"):
            networks.create_network(name, isolate_strict=True)


def test_read_inventory_copes_with_a_vanishing_container(scenario: Scenario) -> None:
    """Containers come and go while podwall reads: a container removed between ps and inspect is not fatal."""
    for i in range(3):
        scenario.run(f"v{i}", cmd=SLEEP)
    code = (
        "import time, subprocess\n"
        "t = time.monotonic() + 3\n"
        "while time.monotonic() < t:\n"
        f"    subprocess.run(['podman', 'rm', '-f', '-t', '0', '{scenario.n('v1')}'], capture_output=True)\n"
        f"    subprocess.run(['podman', 'create', '--name', '{scenario.n('v1')}',"
        f" '{scenario.image}', 'true'], capture_output=True)\n"
    )
    churn = subprocess.Popen([sys.executable, "-c", code])
    try:
        for _ in range(5):
            inv = live.read_inventory()
            assert inv.container(scenario.n("v0")) is not None
    finally:
        churn.wait(timeout=30)


def test_ipv6_dual_stack(scenario: Scenario) -> None:
    net = scenario.network("dual", "--ipv6", "--subnet", "10.231.98.0/24", "--subnet", "fd00:98:98::/64")
    scenario.run("d", "--network", net, cmd=SLEEP)
    c = live.read_inventory().container(scenario.n("d"))
    assert c is not None
    (att,) = c.networks
    assert att.ipv4[0] in ipaddress.ip_network("10.231.98.0/24")
    assert att.ipv6 and att.ipv6[0] in ipaddress.ip_network("fd00:98:98::/64")
    assert not any(a.is_link_local for a in att.ipv6)


def test_audit_live_reports_each_exposure_by_container_name(exposures: tuple[Scenario, int]) -> None:
    """Issue 2's acceptance: `podwall audit --live --format json` names each case's container as `object`."""
    sc, port = exposures
    cp = subprocess.run(
        [sys.executable, "-m", "podwall", "audit", "--live", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cp.returncode == 1, cp.stderr  # findings
    report = json.loads(cp.stdout)
    assert report["errors"] == []
    mine = {(f["rule"], f["object"]) for f in report["findings"] if f["object"].startswith(sc.prefix)}
    expected = {
        ("PW101", sc.n("hostnet")),  # host network
        ("PW102", sc.n("sidecar")),  # container: sharing
        ("PW104", sc.n("web")),  # published on 0.0.0.0
        ("PW105", sc.n("admin")),  # NET_ADMIN
        ("PW106", sc.n("net")),  # a plain custom network: not isolated
    }
    assert expected <= mine, mine
    assert ("PW102", sc.n("member")) not in mine  # pod membership is the pod's design, not a finding
    for f in report["findings"]:
        if f["object"].startswith(sc.prefix):
            assert f["file"] is None and f["line"] is None  # live objects have no file
    web = next(f for f in report["findings"] if (f["rule"], f["object"]) == ("PW104", sc.n("web")))
    assert str(port) in web["message"]
