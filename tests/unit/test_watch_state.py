"""The incremental updater converges: replaying recorded events gives exactly what a full compile gives.

A fake Podman holds the world; each step changes it and records the events Podman would log. The updater
sees only those events plus `inspect` of the world *at the time it processes them* (often later than the
event, as in real life). After every batch the nft lines are applied to a simulated table, and at the end
that table, the updater's own state and `compile_ruleset(final inventory)` must be identical.
"""

from __future__ import annotations

import dataclasses
import ipaddress as ip
import re

import pytest

from podwall.model import Attachment, Container, Inventory, NetMode
from podwall.nft.compile import compile_ruleset
from podwall.policy.load import parse_policy_text
from podwall.policy.semantics import resolve
from podwall.watch.events import Action, Event, parse_event
from podwall.watch.state import Change, Down, Remove, Upsert, WatchState, change_for, strip_addresses, update
from tests.unit.invbuild import container, network

POLICY = """\
version: 1
networks:
  front: {}
  back: {internal: true}
workloads:
  web: {containers: ["web", "web-*"]}
  api: {labels: {app: api}}
  db: {containers: [db]}
flows:
  - {from: web, to: api, ports: ["8080/tcp"]}
  - {from: api, to: db, ports: ["5432/tcp", "6000-6010/udp"]}
  - {from: web, to: web, ports: ["7000/tcp"]}
  - {from: world, to: web, ports: ["443/tcp"]}
  - {from: api, to: {cidr: 203.0.113.0/24}, ports: ["443/tcp"]}
  - {from: web, to: host, ports: ["9100/tcp"]}
  - {from: {cidr: 10.88.0.0/16}, to: db, ports: ["5432/tcp"]}
  - {from: db, to: world}
"""

NETS = (network("front"), network("back"), network("plain"), network("dual"))


class World:
    """A fake Podman: containers by id, and the event log it writes."""

    def __init__(self) -> None:
        self.containers: dict[str, Container] = {}
        self.log: list[str] = []
        self.t = 1_700_000_000.0

    def _event(self, typ: str, status: str, c: Container, **extra: str) -> None:
        self.t += 0.01
        stamp = f"2023-11-14T22:13:{self.t % 60:012.9f}Z"
        body = {"ID": c.id, "Name": c.name, "Status": status, "Time": stamp, "Type": typ, **extra}
        import json

        self.log.append(json.dumps(body))

    def run(self, c: Container) -> None:
        self.containers[c.id] = c
        self._event("container", "create", c)
        self._event("container", "init", c)
        self._event("container", "start", c)

    def stop(self, cid: str) -> None:
        c = self.containers[cid]
        self.containers[cid] = strip_addresses(c)
        self._event("container", "died", c)
        self._event("container", "cleanup", c)

    def restart(self, cid: str, *addrs: tuple[str, str]) -> None:
        c = self.containers[cid]
        fresh = container(c.name, *addrs, labels=dict(c.labels))
        self.containers[cid] = dataclasses.replace(fresh, id=cid)
        self._event("container", "init", c)
        self._event("container", "start", c)

    def remove(self, cid: str) -> None:
        c = self.containers.pop(cid)
        self._event("container", "remove", c)

    def rename(self, cid: str, new: str) -> None:
        c = dataclasses.replace(self.containers[cid], name=new)
        self.containers[cid] = c
        self._event("container", "rename", c)

    def connect(self, cid: str, net: str, *addrs: str) -> None:
        c = self.containers[cid]
        att = Attachment(
            net,
            ipv4=tuple(ip.IPv4Address(a) for a in addrs if ":" not in a),
            ipv6=tuple(ip.IPv6Address(a) for a in addrs if ":" in a),
        )
        self.containers[cid] = dataclasses.replace(c, networks=(*c.networks, att))
        self._event("network", "connect", c, network=net)

    def disconnect(self, cid: str, net: str) -> None:
        c = self.containers[cid]
        self.containers[cid] = dataclasses.replace(
            c, networks=tuple(a for a in c.networks if a.network != net)
        )
        self._event("network", "disconnect", c, network=net)

    def inspect(self, cid: str) -> Container | None:
        return self.containers.get(cid)

    def inventory(self) -> Inventory:
        return Inventory(
            containers=tuple(sorted(self.containers.values(), key=lambda c: c.name)), networks=NETS
        )


def _key(element: str) -> str:
    """The key of a rendered map element (`KEY comment "flow N" : accept`), or a set element itself."""
    return re.sub(r' comment "[^"]*"$', "", element.split(" : ")[0])


class SimTable:
    """The map/set contents of `table inet podwall`, driven by the batch lines (as nft would apply them)."""

    LINE = re.compile(r"^(add|delete) element inet podwall (\w+) \{ (.*) \}$")

    def __init__(self, maps: dict[str, set[str]]) -> None:
        self.maps = maps

    def apply(self, lines: list[str]) -> None:
        for line in lines:
            m = self.LINE.match(line)
            assert m, line
            op, name, body = m.groups()
            items = body.split(", ")
            cur = self.maps.setdefault(name, set())
            for it in items:
                if op == "add":
                    if " : " in it:  # a map element: a key holds one element (a second add is a no-op)
                        if any(_key(x) == _key(it) for x in cur):
                            continue
                    cur.add(it)
                else:
                    match = [x for x in cur if _key(x) == it]
                    assert match, f"delete of absent element {it} in {name}"
                    cur.difference_update(match)


def rendered(maps: dict[str, tuple], sets: dict[str, tuple]) -> dict[str, set[str]]:  # type: ignore[type-arg]
    out = {m: {e.render() for e in es} for m, es in maps.items()}
    for s in ("managed4", "managed6"):
        out[s] = set(sets.get(s, ()))
    return {k: v for k, v in out.items() if v}


def full(policy, inv: Inventory) -> dict[str, set[str]]:  # type: ignore[no-untyped-def]
    rs = compile_ruleset(resolve(policy, inv))
    return rendered(dict(rs.maps), dict(rs.sets))


def replay(world: World, state: WatchState, table: SimTable, start: int) -> tuple[WatchState, int]:
    changes: list[Change] = []
    for line in world.log[start:]:
        ev = parse_event(line)
        assert ev is not None
        ch = change_for(ev.action, ev.id, world.inspect)
        if ch is not None:
            changes.append(ch)
    state, delta = update(state, changes)
    table.apply(delta.lines())
    # the updater's state is always what a full compile of its own inventory gives
    assert rendered(state.maps(), state.sets()) == full(state.policy, state.inventory)
    assert dict(state.sizes) == {m: len(es) for m, es in state.maps().items()}
    return state, len(world.log)


def pod_member(name: str, pod: str, labels: dict[str, str] | None = None) -> Container:
    return dataclasses.replace(
        container(name, labels=labels), network_mode=NetMode.POD, mode_target=pod, pod=pod
    )


@pytest.mark.parametrize("batch", [1, 3, 1000])
def test_replaying_events_converges_to_a_full_compile(batch: int) -> None:
    policy = parse_policy_text(POLICY, "p.yaml").policy
    w = World()
    w.run(container("web", ("front", "10.89.1.2")))
    state = WatchState.build(policy, w.inventory())
    table = SimTable(full(policy, w.inventory()))
    seen = len(w.log)
    steps = [
        lambda: w.run(container("api", ("front", "10.89.1.3"), ("back", "10.89.2.3"), labels={"app": "api"})),
        lambda: w.run(container("db", ("back", "10.89.2.4"))),
        lambda: w.run(container("u1", ("plain", "10.88.0.5"))),
        lambda: w.run(container("web-2", ("front", "10.89.1.6"))),
        # a pod: the infra owns the namespace, members bring workloads (union: web + api)
        lambda: w.run(
            dataclasses.replace(container("p1-infra", ("front", "10.89.1.7")), pod="p1", infra=True)
        ),
        lambda: w.run(pod_member("web-pod", "p1")),
        lambda: w.run(pod_member("helper", "p1", {"app": "api"})),
        # web stops; its address is reused by a stray container before web's remove arrives
        lambda: w.stop("id-web"),
        lambda: w.run(container("stray", ("front", "10.89.1.2"))),
        lambda: w.remove("id-web"),
        # renames: still matching (labels), no longer matching (db → dbold: unmatched but managed)
        lambda: w.rename("id-api", "api-renamed"),
        lambda: w.rename("id-db", "dbold"),
        lambda: w.rename("id-stray", "web-stray"),  # a stray becomes a web
        # a container joins a second (dual-stack) network, then leaves the first
        lambda: w.connect("id-web-2", "dual", "10.89.3.7", "fd00:3::7"),
        lambda: w.disconnect("id-web-2", "front"),
        # a restart with a new address; a pod member leaves
        lambda: w.stop("id-u1"),
        lambda: w.restart("id-u1", ("plain", "10.88.0.9")),
        lambda: w.stop("id-helper"),
        lambda: w.remove("id-helper"),
        lambda: w.run(container("db", ("back", "10.89.2.9"))),
        lambda: w.stop("id-p1-infra"),
    ]
    for i, step in enumerate(steps, 1):
        step()
        if i % batch == 0 or i == len(steps):
            state, seen = replay(w, state, table, seen)
    expected = full(policy, w.inventory())
    assert rendered(state.maps(), state.sets()) == expected
    assert table.maps == {k: v for k, v in expected.items()}


def test_reused_ip_inherits_nothing_even_when_the_old_remove_is_late() -> None:
    policy = parse_policy_text(POLICY, "p.yaml").policy
    api = container("api", ("front", "10.89.1.3"), labels={"app": "api"})
    web = container("web", ("front", "10.89.1.2"))
    state = WatchState.build(policy, Inventory(containers=(api, web), networks=NETS))
    assert any(e.key[:2] == ("10.89.1.2", "10.89.1.3") for e in state.maps()["c2c4"])
    # web's died/remove are still queued when the newcomer, on web's old address, is inspected
    state, delta = update(state, [Upsert(container("stray", ("front", "10.89.1.2")))])
    assert not [e for es in state.maps().values() for e in es if "10.89.1.2" in e.key]
    assert delta.delete and not delta.add
    assert "10.89.1.2" in state.managed  # still managed: stray is on a managed network (denied by default)
    state, delta = update(state, [Down("id-web"), Remove("id-web")])
    assert delta.empty


def test_lines_delete_robustly_and_touch_only_the_changed_container() -> None:
    policy = parse_policy_text(POLICY, "p.yaml").policy
    others = [container(f"web-{i}", ("front", f"10.89.1.{10 + i}")) for i in range(20)]
    api = container("api", ("front", "10.89.1.3"), labels={"app": "api"})
    state = WatchState.build(policy, Inventory(containers=(api, *others), networks=NETS))
    new = container("web-new", ("front", "10.89.1.99"))
    state, delta = update(state, [Upsert(new)])
    lines = delta.lines()
    assert lines and all(line.startswith("add element inet podwall ") for line in lines)
    assert all("10.89.1.99" in e.key for _, e in delta.add)  # only the newcomer's elements
    state, delta = update(state, [Down("id-web-new")])
    lines = delta.lines()
    # every delete is preceded by an add of the same elements (nft 1.0.6 has no destroy)
    dels = [i for i, line in enumerate(lines) if line.startswith("delete")]
    assert dels and all(
        lines[i - 1].replace("add", "delete", 1).split(" { ")[0] == lines[i].split(" { ")[0] for i in dels
    )
    assert len(delta.delete) == 20 * 2 + 1 + 1 + 1  # web↔web both ways, → api, world → it, → host
    assert delta.delete_managed == ("10.89.1.99",)


def test_event_parsing_and_actions() -> None:
    line = (
        '{"ID":"abc","Image":"x","Name":"web","Status":"init","Time":"2026-12-03T17:09:57.858769764Z",'
        '"Type":"container","Attributes":{"app":"web"}}'
    )
    ev = parse_event(line)
    assert isinstance(ev, Event) and ev.action is Action.REFRESH and ev.name == "web"
    assert abs(ev.time - 1796317797.858769764) < 1e-6
    net = parse_event(
        '{"ID":"abc","Name":"web","network":"podman","Status":"connect",'
        '"Time":"2026-12-03T17:09:58.157038246Z","Type":"network","Attributes":null}'
    )
    assert net is not None and net.action is Action.REFRESH and net.network == "podman"
    assert (
        parse_event('{"Type":"container","Status":"died","ID":"a","Time":"2026-12-03T17:09:58Z"}').action
        is Action.DOWN
    )  # type: ignore[union-attr]
    assert (
        parse_event('{"Type":"network","Status":"create","Name":"n","Time":"2026-12-03T17:09:58Z"}').action
        is Action.RESYNC
    )  # type: ignore[union-attr]
    assert parse_event("not json") is None and parse_event("[]") is None
    assert (
        parse_event('{"Type":"image","Status":"pull","Time":"2026-12-03T17:09:58Z"}').action is Action.IGNORE
    )  # type: ignore[union-attr]
