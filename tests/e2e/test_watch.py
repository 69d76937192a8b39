"""`podwall watch` end to end: real containers, real nft, the daemon as a subprocess, independent probes.

Probes run in separate processes that enter the container's network namespace themselves, so nothing of
podwall's own probing code is trusted here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.enforce_util import delete_table, reachable, table_exists
from tests.podman_util import Scenario, nft, podman

pytestmark = pytest.mark.e2e

POLICY = """\
version: 1
networks:
  {p}-net: {{}}
workloads:
  web:
    containers: ["{p}-web*"]
  api:
    containers: ["{p}-api"]
flows:
  - from: web
    to: api
    ports: ["{port}/tcp"]
"""

# Enters the namespace of the container with MAC `mac` as soon as its netns exists (before its address is
# even configured), then connects in a tight loop and prints one JSON line per attempt.
PROBER_SRC = r"""
import ctypes, errno, fcntl, json, os, socket, struct, sys, time
mac, seconds, targets = sys.argv[1].lower(), float(sys.argv[2]), sys.argv[3:]
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
host = os.open("/proc/self/ns/net", os.O_RDONLY)
host_ino = os.fstat(host).st_ino
seen = set(os.listdir("/run/netns"))
print(json.dumps({"ready": time.time()}), flush=True)

def our_mac():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        raw = fcntl.ioctl(s.fileno(), 0x8927, struct.pack("256s", b"eth0"))  # SIOCGIFHWADDR
        return ":".join("%02x" % b for b in raw[18:24])
    except OSError:
        return None
    finally:
        s.close()

deadline = time.time() + 30
found = False
while not found and time.time() < deadline:
    # every pass visits every new namespace once: one without eth0 yet (or someone else's) never blocks us
    for name in sorted(set(os.listdir("/run/netns")) - seen):
        try:
            fd = os.open("/run/netns/" + name, os.O_RDONLY)
        except OSError:
            continue
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0 or os.stat("/proc/thread-self/ns/net").st_ino == host_ino:
                continue  # not mounted yet
            m = our_mac()
            if m == mac:
                found = True
                break
            if m is not None:
                seen.add(name)  # someone else's container
            libc.setns(host, CLONE_NEWNET)
        finally:
            os.close(fd)
    if not found:
        time.sleep(0.0002)
if not found:
    print(json.dumps({"error": "namespace not found"}), flush=True)
    sys.exit(1)
print(json.dumps({"entered": time.time()}), flush=True)
end = time.time() + seconds
while time.time() < end:
    for t in targets:
        addr, port = t.rsplit(":", 1)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(0.02)  # local bridge: an allowed connect takes < 1 ms; rejects are rate-limited
        t0 = time.time()
        try:
            s.connect((addr, int(port)))
            r = "connected"
        except socket.timeout:
            r = "timeout"
        except OSError as e:
            r = errno.errorcode.get(e.errno, str(e.errno))
        s.close()
        print(json.dumps({"t": t0, "target": t, "r": r}), flush=True)
"""
REACHED = {"connected", "ECONNREFUSED"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Daemon:
    proc: subprocess.Popen[bytes]
    log: Path
    policy: Path
    metrics_port: int

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for raw in self.log.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                pass
        return out

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 15.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines():
                if pred(line):
                    return line
            if self.proc.poll() is not None:
                raise AssertionError(f"watch exited with {self.proc.returncode}:\n{self.log.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no matching log line within {timeout}s:\n{self.log.read_text()[-4000:]}")

    def granted(self, container: str, timeout: float = 15.0) -> dict[str, Any]:
        return self.wait_for(
            lambda d: d.get("decision") == "grant" and container in d.get("container", []), timeout
        )


def start_daemon(policy: Path, tmp: Path, *extra: str) -> Daemon:
    port = free_port()
    log = tmp / f"watch-{port}.log"
    fh = open(log, "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podwall",
            "watch",
            "-f",
            str(policy),
            "--metrics",
            f"127.0.0.1:{port}",
            "--log-format",
            "json",
            *extra,
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
        env=os.environ.copy(),
    )
    fh.close()
    d = Daemon(proc, log, policy, port)
    d.wait_for(lambda x: x.get("decision") == "watching", timeout=60)
    return d


def stop_daemon(d: Daemon) -> None:
    if d.proc.poll() is None:
        d.proc.kill()
    d.proc.wait(timeout=10)


@pytest.fixture
def watched(scenario: Scenario, nft_lock: None, tmp_path: Path) -> Iterator[tuple[Scenario, Daemon]]:
    p = scenario.prefix
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.format(p=p, port=8080))
    delete_table()
    scenario.networks.append(f"{p}-net")  # the daemon creates it; the scenario removes it
    d = start_daemon(policy, tmp_path)
    try:
        scenario.run("api", "--network", f"{p}-net", listen=(8080, 22))
        scenario.wait_listening(scenario.n("api"), 8080)
        d.granted(scenario.n("api"))
        yield scenario, d
    finally:
        stop_daemon(d)
        delete_table()


def probe_while_starting(
    sc: Scenario, name: str, mac: str, targets: list[str], seconds: float, *run_opts: str
) -> tuple[list[dict[str, Any]], float]:
    """Start container `name` while a prober waits for its namespace; returns attempts and the start time."""
    prober = subprocess.Popen(
        [sys.executable, "-c", PROBER_SRC, mac, str(seconds), *targets], stdout=subprocess.PIPE, text=True
    )
    try:
        assert prober.stdout is not None
        assert "ready" in json.loads(prober.stdout.readline())
        t_run = time.time()
        sc.run(name, "--mac-address", mac, *run_opts, listen=(8080,))
        out, _ = prober.communicate(timeout=seconds + 40)
    finally:
        if prober.poll() is None:
            prober.kill()
            prober.wait()
    rows = [json.loads(x) for x in out.splitlines() if x.strip()]
    assert not any("error" in r for r in rows), rows[:3]
    return [r for r in rows if "target" in r], t_run


def test_new_container_is_allowed_fast_and_never_reaches_what_it_must_not(
    watched: tuple[Scenario, Daemon],
) -> None:
    sc, d = watched
    p = sc.prefix
    sc.run("other", "--network", f"{p}-net", listen=(8080,))  # managed, in no workload
    sc.wait_listening(sc.n("other"), 8080)
    api, other = sc.ip(sc.n("api")), sc.ip(sc.n("other"))
    allowed, forbidden = f"{api}:8080", [f"{api}:22", f"{other}:8080"]
    attempts, _ = probe_while_starting(
        sc, "web1", "02:50:77:00:00:01", [allowed, *forbidden], 2.5, "--network", f"{p}-net"
    )
    assert len(attempts) > 50, f"the probe loop is not tight: {_summary(attempts)}"
    leaks = [a for a in attempts if a["target"] in forbidden and a["r"] in REACHED]
    assert not leaks, leaks[:5]
    ok = [a for a in attempts if a["target"] == allowed and a["r"] in REACHED]
    assert ok, attempts[-5:]
    # From the first moment the network answered (a reject instead of "no route") to the first success
    up = min(a["t"] for a in attempts if a["r"] not in ("ENETUNREACH", "EADDRNOTAVAIL"))
    first_ok = min(a["t"] for a in ok)
    grant = d.granted(sc.n("web1"))
    print(
        f"\nnetwork up → allowed as seen from inside: {(first_ok - up) * 1000:.1f} ms; daemon: event → "
        f"enforced {grant['latency_ms']} ms (delivered by {grant['source']} in {grant['delivered_ms']} ms)"
    )
    assert grant["latency_ms"] < 250, grant  # goal 100 ms; headroom for a loaded CI machine
    # seen from inside it also includes podman's own gap between network-up and the `init` event (~100 ms)
    # and scheduling on a loaded 2-CPU machine; the latency goal itself is measured in bench/bench_watch.py
    assert first_ok - up < 2.0
    # and after start-up, still nothing but the flow
    assert all(a["r"] in REACHED for a in ok[-3:])


def _web1_granted(sc: Scenario, d: Daemon) -> tuple[str, int]:
    """Start web1 on the policy network and wait for its grant; (api's address, web1's pid)."""
    sc.run("web1", "--network", f"{sc.prefix}-net", listen=(8080,))
    d.granted(sc.n("web1"))
    return sc.ip(sc.n("api")), sc.pid(sc.n("web1"))


def test_a_deleted_table_is_restored_within_5s(watched: tuple[Scenario, Daemon]) -> None:
    sc, d = watched
    api, web_pid = _web1_granted(sc, d)
    assert reachable(web_pid, api, 8080) and not reachable(web_pid, api, 22)
    nft("delete", "table", "inet", "podwall")
    t0 = time.monotonic()
    while not table_exists():
        assert time.monotonic() - t0 < 5.0, "table not restored within 5 s"
        time.sleep(0.02)
    restored = time.monotonic() - t0
    line = d.wait_for(lambda x: x.get("decision") == "restore")
    assert "tampering" in line["reason"], line
    print(f"\nrestored after {restored * 1000:.0f} ms (restore itself {line['took_ms']} ms)")
    assert reachable(web_pid, api, 8080) and not reachable(web_pid, api, 22)
    # an element changed behind our back is drift too
    nft("delete", "element", "inet", "podwall", "c2c4", f"{{ {sc.ip(sc.n('web1'))} . {api} . tcp . 8080 }}")
    d.wait_for(lambda x: x.get("decision") == "restore" and "changed" in x.get("reason", ""), timeout=5)
    assert reachable(web_pid, api, 8080)


def test_a_reused_ip_inherits_nothing(watched: tuple[Scenario, Daemon]) -> None:
    sc, d = watched
    p = sc.prefix
    api = sc.ip(sc.n("api"))
    base = api.rsplit(".", 1)[0]
    reused = f"{base}.{200 + os.getpid() % 50}"
    sc.run("web1", "--network", f"{p}-net", "--ip", reused, listen=(8080,))
    d.granted(sc.n("web1"))
    assert reachable(sc.pid(sc.n("web1")), api, 8080)
    podman("rm", "-f", "-t", "0", sc.n("web1"))
    # the same address, now for a container in no workload: denied from its first packet on
    attempts, _ = probe_while_starting(
        sc, "stray", "02:50:77:00:00:02", [f"{api}:8080"], 1.5, "--network", f"{p}-net", "--ip", reused
    )
    assert sc.ip(sc.n("stray")) == reused
    assert attempts and not [a for a in attempts if a["r"] in REACHED], attempts[:5]
    c2c = nft("list", "map", "inet", "podwall", "c2c4").stdout
    assert reused not in c2c


def test_kill_9_leaves_the_table_and_sigterm_too(watched: tuple[Scenario, Daemon], tmp_path: Path) -> None:
    sc, d = watched
    api, web_pid = _web1_granted(sc, d)
    before = _stateless_table()
    children = _children(d.proc.pid)
    d.proc.send_signal(signal.SIGKILL)
    d.proc.wait(timeout=10)
    assert _stateless_table() == before
    assert reachable(web_pid, api, 8080) and not reachable(web_pid, api, 22)
    deadline = time.monotonic() + 3
    while any(_alive(c) for c in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [c for c in children if _alive(c)], "podman events outlived the daemon"
    # SIGTERM: a clean stop, table in place
    d2 = start_daemon(d.policy, tmp_path)
    try:
        d2.proc.send_signal(signal.SIGTERM)
        assert d2.proc.wait(timeout=10) == 0
        assert table_exists()
        assert any(x.get("decision") == "stop" for x in d2.lines())
    finally:
        stop_daemon(d2)


def test_sighup_with_an_invalid_policy_keeps_the_old_one(watched: tuple[Scenario, Daemon]) -> None:
    sc, d = watched
    api, web_pid = _web1_granted(sc, d)
    before = _stateless_table()
    p = sc.prefix
    d.policy.write_text(POLICY.format(p=p, port="8080/tcpx").replace("/tcp/tcpx", "/tcpx"))
    d.proc.send_signal(signal.SIGHUP)
    line = d.wait_for(lambda x: x.get("decision") == "reload")
    assert line["level"] == "error" and "old one stays" in line["result"], line
    assert any(f"{d.policy}:" in e and "8080/tcpx" in e for e in line["errors"]), line
    assert _stateless_table() == before
    assert reachable(web_pid, api, 8080)
    # a valid new policy is applied
    d.policy.write_text(POLICY.format(p=p, port=22))
    d.proc.send_signal(signal.SIGHUP)
    d.wait_for(lambda x: x.get("decision") == "reload" and x.get("result") == "applied")
    assert reachable(web_pid, api, 22) and not reachable(web_pid, api, 8080)


def test_metrics_are_served_on_loopback(watched: tuple[Scenario, Daemon]) -> None:
    sc, d = watched
    api, web_pid = _web1_granted(sc, d)
    assert reachable(web_pid, api, 8080)
    body = urllib.request.urlopen(f"http://127.0.0.1:{d.metrics_port}/metrics", timeout=5).read().decode()
    for needle in (
        'podwall_containers{workload="web"} 1.0',
        'podwall_containers{workload="api"} 1.0',
        'podwall_set_elements{set="c2c4"} 1.0',
        "podwall_event_enforce_seconds_bucket",
        'podwall_flow_accepts_total{desc="web -> api 8080/tcp",flow="0"}',
        "podwall_denied_packets_total",
        "podwall_resyncs_total",
        "podwall_restores_total",
        "podwall_last_error_timestamp_seconds",
    ):
        assert needle in body, needle
    accepts = [ln for ln in body.splitlines() if ln.startswith("podwall_flow_accepts_total{")]
    assert float(accepts[0].split()[-1]) >= 1
    # bound to loopback only
    listening = Path("/proc/net/tcp").read_text().splitlines()[1:]
    local = [ln.split()[1] for ln in listening if ln.split()[3] == "0A"]
    assert f"0100007F:{d.metrics_port:04X}" in local


def _summary(attempts: list[dict[str, Any]]) -> str:
    t0 = attempts[0]["t"] if attempts else 0.0
    return "; ".join(f"+{(a['t'] - t0) * 1000:.1f}ms {a['target']} {a['r']}" for a in attempts)


def _stateless_table() -> str:
    return nft("-s", "list", "table", "inet", "podwall").stdout


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"
