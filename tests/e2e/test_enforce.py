"""Enforcement end to end: real Podman containers, real nft, probes from inside the namespaces.

Hand-written expectations (not derived from podwall's own semantics), so that a bug in the compiler and the
same bug in the expected matrix cannot cancel out.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.enforce_util import (
    delete_table,
    link_local,
    nft_ruleset,
    podwall,
    reachable,
    table_exists,
    verify_json,
)
from tests.podman_util import Scenario, podman

pytestmark = pytest.mark.e2e

POLICY = """\
version: 1
networks:
  {p}-front: {{}}
  {p}-back:
    internal: true
workloads:
  web:
    containers: ["{p}-web"]
  api:
    labels: {{app: "{p}-api"}}
  db:
    containers: ["{p}-db"]
flows:
  - from: web
    to: api
    ports: ["8080/tcp"]
  - from: api
    to: db
    ports: ["5432/tcp"]
  - from: web
    to: host
    ports: ["9100/tcp"]
{extra}"""


@pytest.fixture
def shop(scenario: Scenario, nft_lock: None, tmp_path: Path) -> Iterator[tuple[Scenario, Path]]:
    """web, api, db, a stray on the managed front network, and two containers on an unmanaged network."""
    p = scenario.prefix
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(p=p, extra=""))
    delete_table()
    try:
        podwall("apply", "--yes", policy=policy, check_rc=0)  # creates both networks
        scenario.networks += [f"{p}-front", f"{p}-back"]
        scenario.network("plain")
        scenario.run("web", "--network", f"{p}-front", listen=(8080, 22))
        scenario.run("api", "--network", f"{p}-front", "--network", f"{p}-back", "--label", f"app={p}-api",
                     listen=(8080, 22))
        scenario.run("db", "--network", f"{p}-back", listen=(5432, 22))
        scenario.run("stray", "--network", f"{p}-front", listen=(8080,))
        scenario.run("u1", "--network", scenario.n("plain"), listen=(8080,))
        scenario.run("u2", "--network", scenario.n("plain"), listen=(8080,))
        for c, port in (("web", 8080), ("api", 8080), ("db", 5432), ("stray", 8080), ("u2", 8080)):
            scenario.wait_listening(scenario.n(c), port)
        podwall("apply", "--yes", policy=policy, check_rc=0)  # now with the containers' addresses
        yield scenario, policy
    finally:
        delete_table()


def test_every_cell_as_the_policy_says(shop: tuple[Scenario, Path]) -> None:
    sc, _ = shop
    n = sc.n
    pid = {c: sc.pid(n(c)) for c in ("web", "api", "db", "stray", "u1")}
    api_front = sc.ip(n("api"), n("front"))
    api_back = sc.ip(n("api"), n("back"))
    db = sc.ip(n("db"), n("back"))
    web = sc.ip(n("web"), n("front"))
    stray = sc.ip(n("stray"), n("front"))
    u2 = sc.ip(n("u2"), n("plain"))
    front_gw = sc.inspect(n("web"))["NetworkSettings"]["Networks"][n("front")]["Gateway"]
    back_gw = sc.inspect(n("db"))["NetworkSettings"]["Networks"][n("back")]["Gateway"]

    # allowed flows
    assert reachable(pid["web"], api_front, 8080)
    assert reachable(pid["api"], db, 5432)
    assert reachable(pid["web"], front_gw, 9100)  # to: host (refused: nothing listens, but it got through)
    # same bridge, other ports and reverse direction
    assert not reachable(pid["web"], api_front, 22)
    assert not reachable(pid["api"], web, 8080)
    assert not reachable(pid["api"], db, 22)
    # the unmatched container: nothing in, nothing out
    assert not reachable(pid["stray"], web, 8080)
    assert not reachable(pid["web"], stray, 8080)
    # cross network
    assert not reachable(pid["web"], db, 5432)
    assert not reachable(pid["db"], api_back, 8080)
    # container → host, other than the allowed port
    assert not reachable(pid["web"], front_gw, 22)
    assert not reachable(pid["db"], back_gw, 22)
    assert not reachable(pid["stray"], front_gw, 9100)
    # unmanaged network: untouched among itself, but cannot reach managed containers
    assert reachable(pid["u1"], u2, 8080)
    assert not reachable(pid["u1"], web, 8080)
    assert not reachable(pid["web"], u2, 8080)
    # IPv6 link-local on the same (IPv4-only) bridge gains nothing
    assert not reachable(pid["web"], link_local(pid["api"]), 8080, scope="eth0")


def test_verify_agrees_and_catches_a_deleted_table(shop: tuple[Scenario, Path]) -> None:
    _, policy = shop
    data = verify_json(policy)
    assert data["wrong"] == 0, [(c["from"], c["to"], c["address"], c["port"], c["proto"], c["expected"], c["observed"], c["detail"]) for c in data["cells"] if c["observed"] and c["expected"] != c["observed"]]
    assert data["correct"] > 30
    delete_table()
    cp = podwall("verify", "--format", "json", policy=policy)
    assert cp.returncode == 1
    import json

    after = json.loads(cp.stdout)
    wrong = [c for c in after["cells"] if c["observed"] is not None and c["expected"] != c["observed"]]
    odd = [c for c in wrong if not (c["expected"] == "block" and c["observed"] == "allow")]
    assert wrong and not odd, [(c["from_container"], c["to_container"], c["address"], c["port"], c["expected"], c["observed"], c["detail"]) for c in odd]
    assert any(c["from"] == "unmatched" for c in wrong)


def test_verify_catches_a_flow_removed_behind_its_back(shop: tuple[Scenario, Path]) -> None:
    sc, policy = shop
    web = sc.ip(sc.n("web"), sc.n("front"))
    api = sc.ip(sc.n("api"), sc.n("front"))
    subprocess.run(["nft", "delete", "element", "inet", "podwall", "c2c4",
                    f"{{ {web} . {api} . tcp . 8080 }}"], check=True)
    cp = podwall("verify", "--format", "json", policy=policy)
    assert cp.returncode == 1
    import json

    wrong = [c for c in json.loads(cp.stdout)["cells"] if c["observed"] and c["expected"] != c["observed"]]
    assert [(c["from"], c["to"], c["address"], c["port"]) for c in wrong] == [("web", "api", api, 8080)]
    assert podwall("status").returncode == 1  # drift


def test_status_reset_and_other_tables_untouched(shop: tuple[Scenario, Path]) -> None:
    _, policy = shop
    subprocess.run(["nft", "add", "table", "inet", "pwforeign"], check=True)
    try:
        st = podwall("status", "--format", "json", check_rc=0)
        import json

        data = json.loads(st.stdout)
        assert data["loaded"] and not data["drifted"] and len(data["flows"]) == 3
        before = _podwall_table()
        podwall("apply", "--yes", policy=policy, check_rc=0)  # unchanged policy: unchanged table
        assert _podwall_table() == before
        podwall("reset", check_rc=0)
        assert not table_exists()
        assert "table inet pwforeign" in nft_ruleset()
        assert podwall("status").returncode == 1
    finally:
        subprocess.run(["nft", "delete", "table", "inet", "pwforeign"], capture_output=True)


def _podwall_table() -> str:
    from tests.e2e.nft_text import podwall_table

    return podwall_table()


def _strip_counters(text: str) -> str:
    from tests.e2e.nft_text import stable

    return stable(text)


def test_invalid_policy_or_failed_apply_changes_nothing(shop: tuple[Scenario, Path], tmp_path: Path) -> None:
    sc, policy = shop
    before = _strip_counters(nft_ruleset())
    nets_before = podman("network", "ls", "--format", "{{.Name}}").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(policy.read_text().replace('"8080/tcp"', '"8080/tcpx"'))
    cp = podwall("apply", "--yes", policy=bad)
    assert cp.returncode == 2 and "bad.yaml:" in cp.stderr and "8080/tcpx" in cp.stderr
    # a network podman cannot create (its subnet collides with an existing one): exit 3, nothing left
    taken = sc.inspect(sc.n("web"))["NetworkSettings"]["Networks"][sc.n("front")]
    subnet = ".".join(taken["IPAddress"].split(".")[:3]) + ".0/24"
    clash = tmp_path / "clash.yaml"
    clash.write_text(policy.read_text().replace(
        "networks:\n", f"networks:\n  {sc.prefix}-new1: {{}}\n  {sc.prefix}-new2:\n    subnet: {subnet}\n", 1))
    cp = podwall("apply", "--yes", policy=clash)
    assert cp.returncode == 3, cp.stderr
    assert _strip_counters(nft_ruleset()) == before
    assert podman("network", "ls", "--format", "{{.Name}}").stdout == nets_before


def test_removing_a_flow_cuts_established_connections(shop: tuple[Scenario, Path], tmp_path: Path) -> None:
    sc, policy = shop
    api = sc.ip(sc.n("api"), sc.n("front"))
    web_pid = sc.pid(sc.n("web"))
    # a long-lived connection web → api:8080 that writes every 50 ms and reports when it breaks
    src = (
        "import socket,sys,time\n"
        f"s=socket.create_connection(('{api}',8080),timeout=2)\n"
        "print('up',flush=True)\n"
        "t0=time.monotonic()\n"
        "while time.monotonic()-t0<20:\n"
        "    try:\n"
        "        s.send(b'x'); time.sleep(0.05)\n"
        "    except OSError as e:\n"
        "        print('cut',time.monotonic(),flush=True); break\n"
    )
    proc = subprocess.Popen(["nsenter", f"--net=/proc/{web_pid}/ns/net", sys.executable, "-c", src],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "up"
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
        reader.start()
        time.sleep(0.3)
        assert not lines  # still flowing under the old policy
        narrowed = tmp_path / "narrow.yaml"
        narrowed.write_text(policy.read_text().replace(
            '  - from: web\n    to: api\n    ports: ["8080/tcp"]\n', ""))
        cp = podwall("apply", "--yes", policy=narrowed, check_rc=0)
        t_applied = time.monotonic()
        assert "1 connection(s) cut" in cp.stdout, cp.stdout
        reader.join(timeout=5)
        assert lines and lines[0].startswith("cut"), lines
        assert float(lines[0].split()[1]) - t_applied < 1.0  # CLOCK_MONOTONIC is system-wide
    finally:
        proc.kill()
        proc.wait()


def test_hostile_labels_and_names_never_reach_nft(scenario: Scenario, nft_lock: None, tmp_path: Path) -> None:
    p = scenario.prefix
    hostile = '"; delete table inet filter; add table inet pwowned #'
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"version: 1\nnetworks:\n  {p}-n: {{}}\nworkloads:\n  w:\n    labels: {{role: x}}\n"
        "flows:\n  - {from: w, to: w, ports: ['8080/tcp']}\n"
    )
    delete_table()
    try:
        podwall("apply", "--yes", policy=policy, check_rc=0)
        scenario.networks.append(f"{p}-n")
        scenario.run("a", "--network", f"{p}-n", "--label", "role=x", "--label", f"evil={hostile}")
        scenario.run("b.c_d-1", "--network", f"{p}-n", "--label", "role=x", "--label", f"x={hostile}")
        podwall("apply", "--yes", policy=policy, check_rc=0)
        rs = nft_ruleset()
        assert "pwowned" not in rs and "delete table" not in rs
        assert "table inet pwowned" not in rs
        assert reachable(scenario.pid(scenario.n("a")), scenario.ip(scenario.n("b.c_d-1")), 8080)
    finally:
        delete_table()


@pytest.fixture
def world(scenario: Scenario) -> Iterator[tuple[str, str, str]]:
    """A network namespace standing for the outside world, joined to the host by a veth (198.18.100.0/30)."""
    ns = scenario.add_netns("world")
    host_if = f"pw{scenario.prefix[-6:]}h"[:15]
    subprocess.run(["ip", "link", "add", host_if, "type", "veth", "peer", "name", "wan0", "netns", ns], check=True)
    try:
        subprocess.run(["ip", "addr", "add", "198.18.100.1/30", "dev", host_if], check=True)
        subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
        for cmd in (["addr", "add", "198.18.100.2/30", "dev", "wan0"], ["link", "set", "wan0", "up"],
                    ["link", "set", "lo", "up"], ["route", "add", "default", "via", "198.18.100.1"]):
            subprocess.run(["ip", "-n", ns, *cmd], check=True)
        yield ns, "198.18.100.1", "198.18.100.2"
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)


def _connect_in_netns(ns: str, address: str, port: int) -> str:
    from tests.e2e.enforce_util import PROBE_SRC

    cp = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", PROBE_SRC, address, str(port), "", "1.0"],
                        capture_output=True, text=True, timeout=10)
    return cp.stdout.strip()


def test_world_ingress_and_egress(scenario: Scenario, nft_lock: None, world: tuple[str, str, str],
                                  tmp_path: Path) -> None:
    ns, host_ip, world_ip = world
    p = scenario.prefix
    policy = tmp_path / "p.yaml"
    policy.write_text(
        f"version: 1\nnetworks:\n  {p}-w: {{}}\nworkloads:\n  web: {{containers: ['{p}-web']}}\n"
        f"  api: {{containers: ['{p}-api']}}\n"
        "flows:\n  - {from: world, to: web, ports: ['8080/tcp']}\n"
        "  - {from: api, to: world, ports: ['9999/tcp']}\n"
    )
    delete_table()
    try:
        podwall("apply", "--yes", policy=policy, check_rc=0)
        scenario.networks.append(f"{p}-w")
        scenario.run("web", "--network", f"{p}-w", "-p", "18181:8080")
        scenario.run("api", "--network", f"{p}-w", "-p", "18182:8080")
        scenario.wait_listening(scenario.n("web"), 8080)
        scenario.wait_listening(scenario.n("api"), 8080)
        podwall("apply", "--yes", policy=policy, check_rc=0)
        # ingress through published ports: only web's, matched on the container port after DNAT
        assert _connect_in_netns(ns, host_ip, 18181) == "connected"
        assert _connect_in_netns(ns, host_ip, 18182) in ("EHOSTUNREACH", "timeout", "EACCES")
        # egress to the world: api on 9999 only (refused = the world namespace answered), web nothing
        assert reachable(scenario.pid(scenario.n("api")), world_ip, 9999)
        assert not reachable(scenario.pid(scenario.n("api")), world_ip, 9998)
        assert not reachable(scenario.pid(scenario.n("web")), world_ip, 9999)
        data = verify_json(policy, "--world-netns", ns)
        world_cells = [c for c in data["cells"] if c["to"] == "world"]
        assert world_cells and all(c["observed"] is not None for c in world_cells)
        assert data["wrong"] == 0, [c for c in data["cells"] if c["observed"] and c["expected"] != c["observed"]]
    finally:
        delete_table()


def test_dual_stack_and_audit_mode(scenario: Scenario, nft_lock: None, tmp_path: Path) -> None:
    """IPv6 global addresses are enforced like IPv4 (ND keeps working); audit mode drops nothing but counts."""
    import json

    p = scenario.prefix
    policy = tmp_path / "p.yaml"
    body = (
        f"networks:\n  {p}-ds:\n    subnets: [10.203.77.0/24, 'fd00:77::/64']\n"
        f"workloads:\n  web: {{containers: ['{p}-web']}}\n  api: {{containers: ['{p}-api']}}\n"
        "flows:\n  - {from: web, to: api, ports: ['8080/tcp']}\n"
    )
    policy.write_text("version: 1\n" + body)
    delete_table()
    try:
        podwall("apply", "--yes", policy=policy, check_rc=0)
        scenario.networks.append(f"{p}-ds")
        scenario.run("web", "--network", f"{p}-ds", listen=(8080,))
        scenario.run("api", "--network", f"{p}-ds", listen=(8080, 22))
        scenario.wait_listening(scenario.n("api"), 8080)
        podwall("apply", "--yes", policy=policy, check_rc=0)
        nets = scenario.inspect(scenario.n("api"))["NetworkSettings"]["Networks"][f"{p}-ds"]
        api6 = nets["GlobalIPv6Address"]
        assert api6.startswith("fd00:77::")
        web, api = scenario.pid(scenario.n("web")), scenario.pid(scenario.n("api"))
        assert reachable(web, api6, 8080)  # needs neighbour discovery through our chains
        assert not reachable(web, api6, 22)
        assert not reachable(api, nets["IPAddress"].replace(nets["IPAddress"].split(".")[-1], "1"), 22)

        policy.write_text("version: 1\nmode: audit\n" + body)
        podwall("apply", "--yes", policy=policy, check_rc=0)
        assert reachable(web, api6, 22) and reachable(api, scenario.ip(scenario.n("web")), 8080)
        st = json.loads(podwall("status", "--format", "json", check_rc=0).stdout)
        assert st["mode"] == "audit" and st["denied"] >= 2
        pairs = {(d["from"], d["to"]) for d in st["denied_workload_pairs"]}
        assert ("web", "api") in pairs and ("api", "web") in pairs
    finally:
        delete_table()
