"""The probe engine against real namespaces, veths and nft rules (root; no Podman needed).

Topology: namespace `a` (the prober) — veth va/vb — namespace `b` (the destination), with a throwaway
`table inet pwprobe_<random>` inside `b` that rejects (icmpx admin-prohibited) and drops chosen ports.
Traffic never leaves these two namespaces.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from podwall.cells import Cell, Probe, ProbeResult, Verdict
from podwall.probe import HostNamespaceError, Listener, observe, probe_all
from podwall.probe.netns import current_netns
from podwall.report.matrix import summarize
from tests.conftest import require_or_fail
from tests.e2e.netns_lab import Lab

pytestmark = pytest.mark.e2e

A4, B4 = "198.18.7.1", "198.18.7.2"
A6, B6 = "fd00:7::1", "fd00:7::2"
OPEN, CLOSED, REJECT, DROP, RETRY = 7001, 7004, 7002, 7003, 7010
ALLOW, BLOCK = Verdict.ALLOW, Verdict.BLOCK

RULES = f"""
  set retry_ports {{ type inet_service; elements = {{ {RETRY} }} }}
  chain input {{
    type filter hook input priority 0; policy accept;
    meta l4proto {{ tcp, udp }} th dport {REJECT} reject with icmpx admin-prohibited
    meta l4proto {{ tcp, udp }} th dport {DROP} drop
    tcp dport 20000-20999 drop
    tcp dport @retry_ports drop
  }}
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    missing = [
        t for t in ("ip", "nft", "sysctl") if shutil.which(t) is None and not os.path.exists(f"/usr/sbin/{t}")
    ]
    require_or_fail("root, ip, nft, sysctl", os.geteuid() == 0 and not missing)
    lab = Lab()
    try:
        lab.netns("a")
        lab.netns("b")
        lab.link("a", "va", [f"{A4}/24", f"{A6}/64"], "b", "vb", [f"{B4}/24", f"{B6}/64"])
        lab.table("b", RULES)
        yield lab
    finally:
        lab.cleanup()
        assert lab.leftovers() == []


@pytest.fixture(scope="module")
def listening(lab: Lab) -> Iterator[Listener]:
    with Listener(lab.path("b"), [(OPEN, "tcp"), (OPEN, "udp"), (RETRY, "tcp")]) as lst:
        yield lst


def one(probe: Probe, timeout_ms: int = 300) -> ProbeResult:
    (res,) = probe_all([probe], timeout_ms)
    return res


def outcome(r: ProbeResult) -> tuple[Verdict | None, str]:
    return (r.verdict, r.detail)


# -- TCP ----------------------------------------------------------------------------------------------------


def test_tcp_outcomes_ipv4_and_ipv6(lab: Lab, listening: Listener) -> None:
    a = lab.path("a")
    probes = [Probe(a, addr, port) for addr in (B4, B6) for port in (OPEN, CLOSED, REJECT, DROP)]
    got = [outcome(r) for r in probe_all(probes, 300)]
    assert got == [
        (ALLOW, "connected"),
        (ALLOW, "refused"),
        (BLOCK, "unreachable"),
        (BLOCK, "timeout"),
        # admin-prohibited over ICMPv6 arrives as EACCES (needs IPV6_RECVERR on this kernel, see engine.py)
        (ALLOW, "connected"),
        (ALLOW, "refused"),
        (BLOCK, "denied"),
        (BLOCK, "timeout"),
    ]


def test_rejects_are_told_apart_from_timeouts_quickly(lab: Lab) -> None:
    r = one(Probe(lab.path("a"), B4, REJECT), timeout_ms=2000)
    assert outcome(r) == (BLOCK, "unreachable") and r.elapsed_ms < 1000


def test_no_route_is_a_block(lab: Lab) -> None:
    # 198.19.255.1 is routed nowhere inside namespace a: nothing leaves it.
    assert outcome(one(Probe(lab.path("a"), "198.19.255.1", 80))) == (BLOCK, "network unreachable")


# -- IPv6 link-local ---------------------------------------------------------------------------------------


def test_ipv6_link_local_needs_and_uses_the_scope(lab: Lab, listening: Listener) -> None:
    a, ll = lab.path("a"), lab.link_local("b", "vb")
    assert ll.startswith("fe80:")
    got = probe_all(
        [
            Probe(a, ll, OPEN, interface="va"),
            Probe(a, ll, OPEN, "udp", interface="va"),
            Probe(a, ll, REJECT, interface="va"),
            Probe(a, ll, OPEN),  # no scope: an error, never a block
            Probe(a, ll, OPEN, interface="eth9"),  # no such interface inside a (the index is looked up there)
        ],
        300,
    )
    assert [outcome(r) for r in got[:3]] == [(ALLOW, "connected"), (ALLOW, "connected"), (BLOCK, "denied")]
    assert got[3].verdict is None and "needs an interface" in got[3].detail
    assert got[4].verdict is None and "eth9" in got[4].detail


# -- UDP ------------------------------------------------------------------------------------------------------


def test_udp_outcomes(lab: Lab, listening: Listener) -> None:
    a = lab.path("a")
    probes = [Probe(a, addr, port, "udp") for addr in (B4, B6) for port in (OPEN, CLOSED, REJECT, DROP)]
    got = [outcome(r) for r in probe_all(probes, 300)]
    assert got == [
        (ALLOW, "connected"),
        (ALLOW, "refused"),
        (BLOCK, "unreachable"),
        (BLOCK, "inferred"),
        (ALLOW, "connected"),
        (ALLOW, "refused"),
        (BLOCK, "denied"),
        (BLOCK, "inferred"),
    ]


def test_listener_starts_stops_and_leaves_ports_in_use_alone(lab: Lab, listening: Listener) -> None:
    a, b = lab.path("a"), lab.path("b")
    lst = Listener(b, [(7020, "udp"), (7020, "tcp"), (OPEN, "udp")])
    with lst:
        assert lst.running
        assert {(p, proto) for p, proto, _ in lst.bound} == {(7020, "udp"), (7020, "tcp")}
        assert {(p, proto) for p, proto, _ in lst.in_use} == {(OPEN, "udp")}  # the module listener holds it
        assert outcome(one(Probe(a, B4, 7020, "udp"))) == (ALLOW, "connected")
        assert outcome(one(Probe(a, B6, 7020, "tcp"))) == (ALLOW, "connected")
    assert not lst.running
    assert not [
        t
        for t in threading.enumerate()
        if t.name.startswith("podwall-listen:") and t is not listening._thread
    ]
    assert outcome(one(Probe(a, B4, 7020, "tcp"))) == (ALLOW, "refused")  # the socket is really closed


def test_listener_ignores_anything_but_the_probe_payload(lab: Lab, listening: Listener) -> None:
    from podwall.probe import run_in_netns

    def send_other() -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.3)
            s.sendto(b"something else", (B4, OPEN))
            try:
                return s.recv(100)
            except TimeoutError:
                return None

    assert run_in_netns(lab.path("a"), send_other) is None  # not a reflector


# -- namespace safety ---------------------------------------------------------------------------------------


def test_host_namespace_is_refused() -> None:
    host_paths = ["/proc/self/ns/net", f"/proc/{os.getpid()}/ns/net", "/proc/thread-self/ns/net"]
    got = probe_all([Probe(p, "127.0.0.1", 9) for p in host_paths], 300)
    for r in got:
        assert r.verdict is None and "host's own network namespace" in r.detail
    with pytest.raises(HostNamespaceError):
        Listener("/proc/self/ns/net", [(7099, "udp")]).start()


def test_reused_pid_that_now_names_a_host_process_is_refused() -> None:
    # A container's pid taken over by a host process: its /proc/PID/ns/net is the host's namespace.
    import subprocess

    proc = subprocess.Popen(["sleep", "30"])
    try:
        (r,) = probe_all([Probe(f"/proc/{proc.pid}/ns/net", "127.0.0.1", 9)], 300)
        assert r.verdict is None and "host's own" in r.detail
    finally:
        proc.kill()
        proc.wait()


def test_missing_namespace_is_an_error_not_a_block() -> None:
    (r,) = probe_all([Probe("/run/netns/pwp-does-not-exist", "198.18.7.2", 80)], 300)
    assert r.verdict is None and r.detail.startswith("error: cannot open")


def test_caller_thread_never_moves_and_workers_die(lab: Lab) -> None:
    before = current_netns()
    probe_all([Probe(lab.path("a"), B4, CLOSED), Probe(lab.path("b"), A4, CLOSED)], 300)
    assert current_netns() == before
    assert not [t for t in threading.enumerate() if t.name.startswith("podwall-probe:")]


def test_several_namespaces_in_parallel_keep_the_order(lab: Lab, listening: Listener) -> None:
    a, b = lab.path("a"), lab.path("b")
    probes = [Probe(a, B4, OPEN), Probe(b, A4, CLOSED), Probe(a, B4, DROP), Probe(b, A6, REJECT)]
    got = [outcome(r) for r in probe_all(probes, 300)]
    # b → a: no table in a, so the reject port is simply closed there
    assert got == [(ALLOW, "connected"), (ALLOW, "refused"), (BLOCK, "timeout"), (ALLOW, "refused")]


# -- retry and deadlines --------------------------------------------------------------------------------------


def test_expected_allow_timeout_is_retried_once(lab: Lab) -> None:
    p = Probe(lab.path("a"), B4, DROP)
    (no_retry,) = probe_all([p], 200)
    (retried,) = probe_all([p], 200, allow_retry=lambda q: q == p)
    assert (no_retry.attempts, retried.attempts) == (1, 2)
    assert outcome(retried) == (BLOCK, "timeout")
    assert 400 <= retried.elapsed_ms < 1000  # two bounded attempts, not more


def test_retry_can_turn_a_lost_first_attempt_into_connected(lab: Lab, listening: Listener) -> None:
    # First SYN is dropped by the retry_ports set; the set element goes away mid-attempt; the retry connects.
    lab.nft("b", f"add element inet {lab.tables[0][1]} retry_ports {{ {RETRY} }}\n")
    p = Probe(lab.path("a"), B4, RETRY)
    timer = threading.Timer(
        0.15, lab.nft, ("b", f"delete element inet {lab.tables[0][1]} retry_ports {{ {RETRY} }}\n")
    )
    timer.start()
    try:
        (r,) = probe_all([p], 500, allow_retry=lambda q: True)
    finally:
        timer.join()
    assert outcome(r) == (ALLOW, "connected") and r.attempts == 2


def test_one_thousand_blocked_probes_respect_the_deadline(lab: Lab) -> None:
    a = lab.path("a")
    probes = [Probe(a, B4 if i % 2 else B6, 20000 + i) for i in range(1000)]
    t0 = time.monotonic()
    got = probe_all(probes, 300)
    elapsed = time.monotonic() - t0
    assert all(outcome(r) == (BLOCK, "timeout") for r in got)
    assert all(300 <= r.elapsed_ms < 1500 for r in got)
    assert elapsed < 5, f"1000 blocked probes took {elapsed:.2f}s"


# -- observe(): cells in, pairs out ---------------------------------------------------------------------------


def test_observe_probes_cells_starts_udp_listeners_and_skips_the_unprobeable(
    lab: Lab, listening: Listener
) -> None:
    a, b = lab.path("a"), lab.path("b")

    def cell(port: int, proto: str, expected: Verdict, netns: str | None = a) -> Cell:
        return Cell("web", "web-1", "api", "api-1", B4, port, proto, expected, netns=netns, to_netns=b)

    cells = [
        cell(7030, "udp", ALLOW),  # nothing listens: observe() starts one, so this is proven, not refused
        cell(DROP, "udp", BLOCK),
        cell(REJECT, "tcp", BLOCK),
        cell(CLOSED, "tcp", ALLOW),
        cell(80, "tcp", BLOCK, netns=None),  # e.g. world without --world-netns
    ]
    pairs = observe(cells, 300)
    assert [c for c, _ in pairs] == cells
    assert [outcome(r) for _, r in pairs] == [
        (ALLOW, "connected"),
        (BLOCK, "inferred"),
        (BLOCK, "unreachable"),
        (ALLOW, "refused"),
        (None, "not probed"),
    ]
    s = summarize(pairs)
    assert (s.correct, s.wrong, s.not_probed, s.inferred) == (4, 0, 1, 1)
    assert not [
        t for t in threading.enumerate() if t.name == f"podwall-listen:{b}" and t is not listening._thread
    ]


# -- cleanup --------------------------------------------------------------------------------------------------


def test_lab_cleans_up_even_when_the_test_body_fails() -> None:
    require_or_fail("root", os.geteuid() == 0)
    lab = Lab()
    with pytest.raises(RuntimeError, match="boom"), lab:
        lab.netns("x")
        lab.netns("y")
        lab.link("x", "vx", ["198.18.9.1/24"], "y", "vy", ["198.18.9.2/24"])
        lab.table("y", "chain input { type filter hook input priority 0; tcp dport 1 drop; }")
        assert len(lab.leftovers()) == 2
        raise RuntimeError("boom")
    assert lab.leftovers() == [] and lab.namespaces == [] and lab.tables == []
