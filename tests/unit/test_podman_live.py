"""The live Podman parser against JSON recorded from Podman 4.3 and 5.4 (tests/fixtures/podman/record.py)."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from podwall.model import Container, Inventory, NetMode
from podwall.podman import live
from podwall.podman.live import PodmanDataError, parse_inventory
from podwall.podman.netns import NetnsError, candidate_path, is_host_netns, netns_path
from podwall.podman.networks import create_args

FIX = Path(__file__).resolve().parent.parent / "fixtures" / "podman"
VERSIONS = ("4.3", "5.4")


def load(version: str, **kw: object) -> Inventory:
    d = FIX / version
    return parse_inventory(
        (d / "ps.json").read_text(),
        (d / "container-inspect.json").read_text(),
        (d / "network-ls.json").read_text(),
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture(params=VERSIONS)
def inv(request: pytest.FixtureRequest) -> Inventory:
    return load(request.param)


def c(inv: Inventory, name: str) -> Container:
    got = inv.container(f"pwfx-{name}")
    assert got is not None, f"pwfx-{name} missing"
    return got


def test_recorded_podman_versions() -> None:
    for v in VERSIONS:
        version = json.loads((FIX / v / "version.json").read_text())["Client"]["Version"]
        assert version.startswith(v)


def test_every_container_is_read(inv: Inventory) -> None:
    names = {x.name for x in inv.containers}
    assert {
        f"pwfx-{n}"
        for n in (
            "web",
            "host",
            "sidecar",
            "pod-infra",
            "podmember",
            "admin",
            "priv",
            "int",
            "iso",
            "dual",
            "multi",
            "ns",
            "stopped",
            "slirp",
        )
    } == names


def test_custom_network_with_published_ports(inv: Inventory) -> None:
    web = c(inv, "web")
    assert web.network_mode is NetMode.BRIDGE and web.mode_target is None
    assert web.network_names == ("pwfx-net",)
    att = web.networks[0]
    assert len(att.ipv4) == 1 and att.ipv4[0] in ipaddress.ip_network("10.89.0.0/24")
    assert att.ipv6 == ()
    assert att.gateway4 == ipaddress.ip_address("10.89.0.1")
    assert att.mac and len(att.mac.split(":")) == 6
    assert dict(web.labels) == {"app": "web", "tier": "front"}
    assert web.image == "localhost/podwall-test-box:latest"
    ports = [(p.host_ip, p.host_port, p.container_port, p.protocol, p.range) for p in web.ports]
    # 0.0.0.0 reads "" on 4.3 and "0.0.0.0" on 5.4: both mean all interfaces
    assert ports == [
        ("", 18180, 8080, "tcp", 1),
        ("127.0.0.1", 18181, 8081, "tcp", 1),
        ("", 18190, 9000, "udp", 3),
    ]
    assert [p.all_interfaces for p in web.ports] == [True, False, True]
    assert web.running and web.pid and web.sandbox_key and web.sandbox_key.startswith("/run/netns/")
    assert not web.privileged and web.cap_add == () and not web.infra and web.pod is None


def test_host_network(inv: Inventory) -> None:
    h = c(inv, "host")
    assert h.network_mode is NetMode.HOST
    assert h.networks == ()  # 5.x lists a pseudo-network "host": not an attachment
    assert h.sandbox_key is None
    assert candidate_path(h) is None


def test_container_sharing_names_the_owner(inv: Inventory) -> None:
    s = c(inv, "sidecar")
    assert s.network_mode is NetMode.CONTAINER and s.mode_target == "pwfx-web"
    assert s.ports == ()  # the ports are the owner's
    assert s.addresses == c(inv, "web").addresses
    assert s.sandbox_key == c(inv, "web").sandbox_key


def test_pod(inv: Inventory) -> None:
    infra, member = c(inv, "pod-infra"), c(inv, "podmember")
    assert infra.infra and infra.pod == "pwfx-pod" and infra.network_mode is NetMode.BRIDGE
    assert [(p.host_ip, p.host_port, p.container_port) for p in infra.ports] == [("127.0.0.1", 18182, 80)]
    assert member.pod == "pwfx-pod" and not member.infra
    assert member.network_mode is NetMode.POD and member.mode_target == "pwfx-pod"
    assert member.ports == ()
    assert member.sandbox_key == infra.sandbox_key


def test_capabilities(inv: Inventory) -> None:
    admin = c(inv, "admin")
    # --cap-add NET_ADMIN --cap-add net_raw: Debian's 4.3 default set already holds NET_RAW
    assert "NET_ADMIN" in admin.cap_add and set(admin.cap_add) <= {"NET_ADMIN", "NET_RAW"}
    assert {"NET_ADMIN", "NET_RAW"} <= set(admin.effective_caps)
    assert all(not x.startswith("CAP_") and x.isupper() for x in admin.effective_caps)
    assert admin.network_mode is NetMode.DEFAULT and admin.network_names == ("podman",)
    priv = c(inv, "priv")
    assert priv.privileged and "SYS_ADMIN" in priv.effective_caps
    assert priv.network_mode is NetMode.NONE and priv.networks == ()


def test_netavark_isolation_options(inv: Inventory) -> None:
    internal, iso, plain = inv.network("pwfx-internal"), inv.network("pwfx-isolate"), inv.network("pwfx-net")
    assert internal and internal.internal and internal.isolate is None and internal.isolated
    assert iso and iso.isolate == "true" and not iso.internal and not iso.isolated
    assert plain and not plain.internal and plain.isolate is None and plain.dns_enabled
    assert plain.interface and plain.interface.startswith("podman")
    assert c(inv, "int").network_names == ("pwfx-internal",)
    assert c(inv, "iso").network_names == ("pwfx-isolate",)
    assert c(inv, "multi").network_names == ("pwfx-internal", "pwfx-net")
    default = inv.network("podman")
    assert default and not default.dns_enabled and str(default.subnets[0].cidr) == "10.88.0.0/16"


def test_dual_stack(inv: Inventory) -> None:
    net = inv.network("pwfx-dual")
    assert net and net.ipv6
    assert [str(s.cidr) for s in net.subnets] == ["10.231.77.0/24", "fd00:77:77::/64"]
    assert [str(s.gateway) for s in net.subnets] == ["10.231.77.1", "fd00:77:77::1"]
    att = c(inv, "dual").networks[0]
    assert att.ipv4[0] in net.subnets[0].cidr and att.ipv6[0] in net.subnets[1].cidr
    assert att.gateway6 == ipaddress.ip_address("fd00:77:77::1")


def test_other_modes(inv: Inventory) -> None:
    ns = c(inv, "ns")
    assert ns.network_mode is NetMode.NS and ns.mode_target == "/run/netns/pwfx-ns" and ns.networks == ()
    assert candidate_path(ns) == "/run/netns/pwfx-ns"
    assert c(inv, "slirp").network_mode is NetMode.SLIRP and c(inv, "slirp").networks == ()
    stopped = c(inv, "stopped")
    assert not stopped.running and stopped.pid is None and stopped.sandbox_key is None
    assert stopped.network_names == ("pwfx-net",) and stopped.addresses == ()
    assert [(p.host_port, p.container_port) for p in stopped.ports] == [(18183, 80)]
    assert candidate_path(stopped) is None
    with pytest.raises(NetnsError, match="not running"):
        netns_path(stopped)


def test_rootless_and_interfaces_are_passed_through() -> None:
    inv = load("5.4", rootless=True, interfaces=lambda pid: {"ba:b6:e3:82:49:41": "eth0"})
    assert all(x.rootless for x in inv.containers)
    assert c(inv, "web").networks[0].interface == "eth0"
    assert c(inv, "stopped").networks[0].interface is None  # not running: never asked


def test_same_model_from_both_versions() -> None:
    """What podwall acts on is identical across versions, apart from ids, addresses and pids."""

    def shape(inv: Inventory) -> list[tuple[object, ...]]:
        return [
            (
                x.name,
                x.network_mode,
                x.mode_target,
                x.pod,
                x.infra,
                x.network_names,
                x.ports,
                x.privileged,
                x.running,
                "NET_ADMIN" in x.cap_add,
                dict(x.labels).get("app"),
            )
            for x in inv.containers
        ]

    a, b = load("4.3"), load("5.4")
    # slirp4netns is missing from the 5.4 chroot: that container exists there but never ran
    assert [s for s in shape(a) if s[0] != "pwfx-slirp"] == [s for s in shape(b) if s[0] != "pwfx-slirp"]
    strip = lambda n: (n.name, n.driver, n.internal, n.isolate, n.ipv6, n.dns_enabled, n.interface)  # noqa: E731
    assert [strip(n) for n in a.networks] == [strip(n) for n in b.networks]


# --- malformed input: a clear EnvironmentProblem, never a traceback --------------------------------------


@pytest.mark.parametrize(
    ("ps", "inspect", "nets", "match"),
    [
        ("not json", "[]", "[]", r"podman ps printed invalid JSON"),
        ("[]", "[{", "[]", r"podman container inspect printed invalid JSON"),
        ("[]", "{}", "[]", r"podman container inspect: expected a list"),
        (
            "[]",
            '[{"Id": "a", "Name": "x", "NetworkSettings": {"Networks": []}}]',
            "[]",
            r"\[0\]\.NetworkSettings\.Networks: expected an object",
        ),
        (
            "[]",
            '[{"Id": "a", "Name": "x", "NetworkSettings": {"Networks": {"n": {"IPAddress": "1.2.3"}}}}]',
            "[]",
            r"Networks\.n\.IPAddress: not an IP address",
        ),
        (
            "[]",
            '[{"Id": "a", "Name": "x", "State": {"Pid": "many"}}]',
            "[]",
            r"State\.Pid: expected an integer",
        ),
        ("[]", '[{"Name": "x"}]', "[]", r"without Id or Name"),
        ("[]", "[]", '[{"name": "n", "subnets": [{"subnet": "10.0.0.0/33"}]}]', r"subnet: not a CIDR"),
        ("[]", "[]", '[{"name": "n", "internal": "yes"}]', r"\.internal: expected a boolean"),
    ],
)
def test_malformed_json_is_an_environment_problem(ps: str, inspect: str, nets: str, match: str) -> None:
    with pytest.raises(PodmanDataError, match=match):
        parse_inventory(ps, inspect, nets)


def test_minimal_container_defaults() -> None:
    inv = parse_inventory("", '[{"Id": "abc", "Name": "/solo"}]', "")
    (solo,) = inv.containers
    assert solo.name == "solo" and solo.network_mode is NetMode.BRIDGE and solo.networks == ()
    assert not solo.running and solo.pid is None


def test_port_ranges_coalesce_only_when_both_sides_are_consecutive() -> None:
    bindings = {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "81/tcp": [{"HostIp": "", "HostPort": "8081"}],
        "82/tcp": [{"HostIp": "", "HostPort": "9000"}],  # host side jumps: a new mapping
        "83/udp": [{"HostIp": "::1", "HostPort": "53"}],
        "90/tcp": [{"HostIp": "0.0.0.0", "HostPort": ""}],  # Podman picks the host port
    }
    got = live._ports(live._J(bindings, "PortBindings"))
    assert [(p.container_port, p.host_port, p.range, p.protocol, p.host_ip) for p in got] == [
        (80, 8080, 2, "tcp", ""),
        (82, 9000, 1, "tcp", ""),
        (83, 53, 1, "udp", "::1"),
        (90, None, 1, "tcp", ""),
    ]


@pytest.mark.parametrize(
    ("raw", "mode", "target"),
    [
        ("bridge", NetMode.BRIDGE, None),
        ("host", NetMode.HOST, None),
        ("none", NetMode.NONE, None),
        ("container:abc", NetMode.CONTAINER, "abc"),
        ("ns:/run/netns/x", NetMode.NS, "/run/netns/x"),
        ("slirp4netns", NetMode.SLIRP, None),
        ("pasta", NetMode.PASTA, None),
    ],
)
def test_network_modes(raw: str, mode: NetMode, target: str | None) -> None:
    assert live._mode(raw) == (mode, target)


# --- netns and network creation helpers ------------------------------------------------------------------


def test_own_namespace_is_the_host() -> None:
    assert is_host_netns("/proc/self/ns/net")
    # a reused pid that now belongs to a host process (here: this test) is refused
    host_pid = Container(name="x", network_mode=NetMode.BRIDGE, running=True, pid=os.getpid())
    with pytest.raises(NetnsError, match="host's own"):
        netns_path(host_pid)
    with pytest.raises(NetnsError, match="host network"):
        netns_path(Container(name="h", network_mode=NetMode.HOST, running=True, pid=1))


def test_create_args() -> None:
    assert create_args("n") == ["network", "create", "--", "n"]
    assert create_args("n", ["10.1.0.0/24", "fd00:1::/64"], internal=True, isolate_strict=True) == [
        "network",
        "create",
        "--subnet",
        "10.1.0.0/24",
        "--subnet",
        "fd00:1::/64",
        "--internal",
        "--ipv6",
        "--opt",
        "isolate=strict",
        "--",
        "n",
    ]
    with pytest.raises(ValueError):
        create_args("n", ["10.1.0.1/24"])  # host bits set: say so rather than guess


def test_inspect_drops_containers_removed_after_ps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under churn a container listed by `ps` is gone by `inspect`: it is dropped, the rest still read."""
    from podwall.errors import CommandFailed

    ps = json.dumps([{"Id": i, "PodName": ""} for i in ("aaa1", "bbb2", "ccc3")])
    calls: list[tuple[str, ...]] = []

    def fake(podman: str, *args: str) -> str:
        calls.append(args)
        if args[0] == "ps":
            return ps
        ids = args[2:]
        if "bbb2" in ids:
            raise CommandFailed(["podman", *args], 125, "Error: inspecting object: no such container bbb2\n")
        return json.dumps([{"Id": i} for i in ids])

    monkeypatch.setattr(live, "_podman", fake)
    ps_json, inspect_json = live._ps_and_inspect("podman")
    assert [c["Id"] for c in json.loads(inspect_json)] == ["aaa1", "ccc3"]
    assert [a[0] for a in calls] == ["ps", "container", "container"]


def test_inspect_errors_other_than_gone_containers_still_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    from podwall.errors import CommandFailed

    def fake(podman: str, *args: str) -> str:
        if args[0] == "ps":
            return json.dumps([{"Id": "aaa1", "PodName": ""}])
        raise CommandFailed(["podman", *args], 125, "Error: database is locked\n")

    monkeypatch.setattr(live, "_podman", fake)
    with pytest.raises(CommandFailed):
        live._ps_and_inspect("podman")
