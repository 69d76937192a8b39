"""The daemon's small parts: the events file tail (inotify), sd_notify, logs, --metrics, the unit file."""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from podwall.errors import InputError
from podwall.watch.logs import DecisionLog
from podwall.watch.notify import sd_notify
from podwall.watch.sources import EventsFileTail, Item, Received
from tests.conftest import ROOT, require_or_fail

EV = (
    '{{"ID":"{id}","Name":"c{id}","Status":"start","Time":"2026-12-03T17:09:57.858769764Z",'
    '"Type":"container","Attributes":{{}}}}\n'
)


def _collect(q: queue.Queue[Item], n: int, timeout: float = 3.0) -> list[Received]:
    out: list[Received] = []
    deadline = time.monotonic() + timeout
    while len(out) < n and time.monotonic() < deadline:
        try:
            it = q.get(timeout=0.05)
        except queue.Empty:
            continue
        assert isinstance(it, Received)
        out.append(it)
    return out


def test_file_tail_follows_appends_fast_and_survives_rotation(tmp_path: Path) -> None:
    log = tmp_path / "events" / "events.log"
    log.parent.mkdir()
    log.write_text(EV.format(id="old"))  # before the tail starts: covered by the initial apply, not replayed
    q: queue.Queue[Item] = queue.Queue()
    stop = threading.Event()
    tail = EventsFileTail(log, q, stop)
    tail.start()
    try:
        time.sleep(0.1)
        t0 = time.monotonic()
        with open(log, "a") as fh:
            fh.write(EV.format(id="a1"))
            fh.flush()
            fh.write(EV.format(id="a2")[:30])  # a partial line waits for its end
            fh.flush()
        got = _collect(q, 1)
        assert [r.event.id for r in got] == ["a1"] and tail.inotify_ok
        assert time.monotonic() - t0 < 0.5  # inotify, not the 1 s fallback poll
        with open(log, "a") as fh:
            fh.write(EV.format(id="a2")[30:])
        assert [r.event.id for r in _collect(q, 1)] == ["a2"]
        # rotation: a new file under the same name is read from its start
        log.rename(log.with_suffix(".1"))
        log.write_text(EV.format(id="b1"))
        assert [r.event.id for r in _collect(q, 1)] == ["b1"]
        # truncation
        log.write_text(EV.format(id="c1"))
        assert [r.event.id for r in _collect(q, 1)] == ["c1"]
        assert q.empty()
    finally:
        stop.set()
        tail.join(timeout=3)


def test_sd_notify_sends_a_datagram(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind(str(path))
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert srv.recv(100) == b"READY=1"
    assert not sd_notify("READY=1", {})
    # abstract namespace socket ("@name")
    name = f"podwall-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as srv:
        srv.bind("\0" + name)
        assert sd_notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert srv.recv(100) == b"STOPPING=1"


def test_decision_log_text_quotes_hostile_values_and_json_is_one_object_per_line() -> None:
    buf = io.StringIO()
    log = DecisionLog("text", buf)
    log("grant", container=["evil name\nrevoke container=x"], addresses=["10.0.0.2"], latency_ms=12.5)
    line = buf.getvalue()
    assert line.count("\n") == 1 and " grant " in line and "latency_ms=12.5" in line
    assert 'container="evil name\\nrevoke container=x"' in line
    buf = io.StringIO()
    DecisionLog("json", buf)("revoke", level="warning", container=["db"], elements=3)
    d = json.loads(buf.getvalue())
    assert d["decision"] == "revoke" and d["level"] == "warning" and d["container"] == ["db"] and "ts" in d
    with pytest.raises(ValueError):
        DecisionLog("xml")


def test_metrics_listen_address_parsing() -> None:
    from podwall.cli.watch import parse_listen

    assert parse_listen("127.0.0.1:9469") == ("127.0.0.1", 9469)
    assert parse_listen("[::1]:9469") == ("::1", 9469)
    assert parse_listen("off") is None
    for bad in ("localhost:9469", "127.0.0.1", "127.0.0.1:http", "1.2.3.4:70000"):
        with pytest.raises(InputError):
            parse_listen(bad)


def test_systemd_unit_verifies_and_orders_itself(tmp_path: Path) -> None:
    unit = (ROOT / "packaging" / "podwall.service").read_text()
    assert "Type=notify" in unit
    after = next(line for line in unit.splitlines() if line.startswith("After="))
    before = next(line for line in unit.splitlines() if line.startswith("Before="))
    assert "nftables.service" in after and "firewalld.service" in after
    assert "podman-restart.service" in before
    assert "ExecStop=" not in unit  # the table stays when the service stops
    analyze = shutil.which("systemd-analyze")
    require_or_fail("systemd-analyze (Debian package systemd)", analyze is not None)
    assert analyze is not None
    # verify checks that ExecStart exists: point it at this checkout's podwall
    exe = shutil.which("podwall") or str(Path(os.sys.executable).parent / "podwall")
    local = tmp_path / "podwall.service"
    local.write_text(unit.replace("/usr/local/bin/podwall", exe))
    cp = subprocess.run([analyze, "verify", "--man=no", str(local)], capture_output=True, text=True)
    assert cp.returncode == 0, cp.stderr
    assert "podwall.service" not in cp.stderr, cp.stderr  # no warnings about our unit either


# A listing as nft 1.0.6 prints it (`nft -j list table inet podwall`, trimmed): per-element counters with the
# comment that names the flow, and the deny chain's counter.
LISTING = {"nftables": [
    {"metainfo": {"version": "1.0.6"}},
    {"map": {"family": "inet", "name": "c2c4", "table": "podwall", "map": "verdict", "elem": [
        [{"elem": {"val": {"concat": ["10.89.1.2", "10.89.1.3", "tcp", 8080]}, "comment": "flow 0",
                   "counter": {"packets": 5, "bytes": 300}}}, {"accept": None}],
        [{"elem": {"val": {"concat": ["10.89.1.2", "10.89.2.3", "tcp", 8080]}, "comment": "flow 0",
                   "counter": {"packets": 2, "bytes": 120}}}, {"accept": None}],
        [{"elem": {"val": {"concat": ["10.89.1.3", "10.89.2.4", "tcp", 5432]}, "comment": "flow 1",
                   "counter": {"packets": 7, "bytes": 420}}}, {"accept": None}],
    ]}},
    {"map": {"family": "inet", "name": "c2c4r", "table": "podwall", "map": "verdict", "flags": ["interval"],
             "elem": [[{"elem": {"val": {"concat": ["10.89.1.3", "10.89.2.4", "udp", {"range": [6000, 6010]}]},
                                 "comment": "flow 1", "counter": {"packets": 1, "bytes": 60}}}, {"accept": None}]]}},
    {"rule": {"family": "inet", "table": "podwall", "chain": "deny", "expr": [
        {"counter": {"packets": 9, "bytes": 540}}, {"reject": {"type": "icmpx", "expr": "admin-prohibited"}}]}},
]}


def test_flow_counters_sum_the_elements_of_each_flow() -> None:
    from podwall.nft.live import FlowCounter, Nft

    flows, denied = Nft().flow_counters(LISTING)
    assert flows == [FlowCounter(0, 7, 420), FlowCounter(1, 8, 480)]
    assert denied == 9


def test_flow_totals_stay_monotonic_when_elements_come_and_go() -> None:
    from podwall.nft.live import parse_element_counters
    from podwall.watch.metrics import FlowTotals

    names = ["web -> api 8080/tcp", "api -> db 5432/tcp", "worker -> db 5432/tcp"]
    totals = FlowTotals()
    els = parse_element_counters(LISTING)
    assert totals.add(els, names) == {(0, names[0]): 7, (1, names[1]): 8, (2, names[2]): 0}
    # the container behind 10.89.2.3 is gone (its element too), the others counted on
    later = [e for e in els if "10.89.2.3" not in e.key]
    later = [type(e)(e.map, e.key, e.flow, e.packets + 10, e.bytes) for e in later]
    assert totals.add(later, names) == {(0, names[0]): 17, (1, names[1]): 28, (2, names[2]): 0}
    # it comes back with the same address: a new element, counting from 0 again; nothing is lost or doubled
    back = later + [type(els[1])(els[1].map, els[1].key, 0, 3, 0)]
    assert totals.add(back, names) == {(0, names[0]): 20, (1, names[1]): 28, (2, names[2]): 0}
