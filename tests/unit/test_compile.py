"""The compiler: golden rulesets, per-packet flatness, injection safety, and elements ≡ grants."""

from __future__ import annotations

import ipaddress as ip
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from podwall.model import Inventory
from podwall.nft.boxes import disjoint
from podwall.nft.compile import UnsafeValue, compile_ruleset, ifname
from podwall.policy.load import parse_policy_text
from podwall.policy.semantics import Decider, resolve
from tests.unit.invbuild import SHOP_POLICY, container, network, shop

GOLDEN = Path(__file__).resolve().parent.parent / "golden"

CASES = {
    "shop": (SHOP_POLICY, shop),
    "audit_mode": (SHOP_POLICY.replace("version: 1\n", "version: 1\nmode: audit\n"), shop),
    "drop_dual_stack": (
        "version: 1\ndeny: drop\nnetworks:\n  dual: {}\nworkloads:\n  a: {containers: [a]}\n  b: {containers: [b]}\n"
        "flows:\n  - {from: a, to: b, ports: ['80/tcp', '70-90/tcp', '53/udp']}\n  - {from: a, to: b}\n"
        "  - {from: {cidr: 'fd00:9::/64'}, to: b, ports: ['22/tcp']}\n  - {from: b, to: {cidr: 10.0.0.0/8}}\n"
        "  - {from: b, to: {cidr: 10.1.0.0/16}, ports: ['443/tcp']}\n",
        lambda: Inventory(
            containers=(container("a", ("dual", "10.89.3.2"), ("dual", "fd00:3::2")),
                        container("b", ("dual", "10.89.3.3"), ("dual", "fd00:3::3"))),
            networks=(network("dual"),),
        ),
    ),
}


def compiled(case: str) -> str:
    text, inv = CASES[case]
    lp = parse_policy_text(text, f"{case}.yaml")
    return compile_ruleset(resolve(lp.policy, inv()), "0123456789ab").table


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    path = GOLDEN / f"{case}.nft"
    text = compiled(case)
    if os.environ.get("PODWALL_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"missing golden {path}: run with PODWALL_UPDATE_GOLDEN=1 and review it"
    assert text == path.read_text()


def test_compile_is_deterministic() -> None:
    assert compiled("shop") == compiled("shop")


def test_shop_ruleset_by_hand() -> None:
    t = compiled("shop")
    # web → api on 8080 only, through flow 0 (accepted; counted on the element, which names its flow)
    assert '10.89.1.2 . 10.89.1.3 . tcp . 8080 comment "flow 0" : accept' in t
    # no chain per flow: nft lists every chain before each command, so element updates would slow with flows
    assert "chain flow_" not in t and "goto flow" not in t
    assert re.findall(r"10\.89\.1\.2 \. 10\.89\.1\.3 \. [^:]+? comment", t) == ["10.89.1.2 . 10.89.1.3 . tcp . 8080 comment"]
    # the stray container is managed (on a managed bridge) and has no element at all
    assert "10.89.1.9 ." not in t and "10.89.1.9" in t  # in managed4 only
    # both managed bridges are default-deny by interface; the unmanaged one is not
    managed = t[t.index("set managed_ifaces"):t.index("set podman_ifaces")]
    assert '"podman1"' in managed and '"podman2"' in managed and '"podman0"' not in managed
    assert '"podman0"' in t[t.index("set podman_ifaces"):t.index("set managed4")]  # never `world`
    # base chains at filter - 10, reject last
    assert t.count("priority filter - 10; policy accept;") == 2
    assert "reject with icmpx admin-prohibited" in t
    # ICMPv6 ND passes before anything else can deny it; router advertisements from containers do not
    fwd = t[t.index("chain forward"):]
    assert fwd.index("nd-neighbor-solicit") < fwd.index("goto policy_fwd")
    assert "nd-router-advert" not in t and "nd-redirect" not in t
    # anti-spoofing before conntrack; mid-stream TCP never re-admitted
    assert fwd.index("goto spoofed") < fwd.index("ct state established")
    assert '"podman1" . 10.89.1.0/24' in t
    assert t[t.index("chain policy_fwd"):].split("\n")[1].strip().endswith("!= syn goto deny")


def test_rule_count_does_not_grow_with_flows() -> None:
    base = "version: 1\nnetworks:\n  front: {}\nworkloads:\n  a: {containers: [a]}\n  b: {containers: [b]}\nflows:\n"
    inv = Inventory(containers=(container("a", ("front", "10.89.1.2")), container("b", ("front", "10.89.1.3"))),
                    networks=(network("front"),))

    def rules(n: int) -> int:
        flows = "".join(f"  - {{from: a, to: b, ports: ['{1000 + i}/tcp']}}\n" for i in range(n))
        t = compile_ruleset(resolve(parse_policy_text(base + flows, "p").policy, inv)).table
        body = [ln for ln in t.splitlines() if ln.startswith("\t\t") and not ln.strip().startswith(
            ("type", "flags", "elements", "size", "counter accept")) and ":" not in ln]
        return len(body)

    assert rules(1) == rules(200)


def test_hostile_interface_name_is_refused() -> None:
    with pytest.raises(UnsafeValue):
        ifname('podman1" ; flush ruleset ; "')
    assert ifname("podman1") == '"podman1"'


def test_hostile_names_and_labels_never_reach_the_text() -> None:
    evil = '"; flush ruleset; #'
    inv = Inventory(
        containers=(container("web", ("front", "10.89.1.2"), labels={"x": evil}),
                    container(f"api{evil}", ("front", "10.89.1.3"), labels={"app": "api", evil: evil})),
        networks=(network("front"),),
    )
    t = compile_ruleset(resolve(parse_policy_text(SHOP_POLICY, "p").policy, inv)).table
    assert "flush" not in t and evil not in t
    assert "10.89.1.2 . 10.89.1.3 . tcp . 8080" in t


# ---- the elements mean exactly what the grants mean ------------------------------------------------------


def _parse_elements(table: str) -> dict[str, list[tuple[list[str], int]]]:
    maps: dict[str, list[tuple[list[str], int]]] = {}
    for m in re.finditer(r"map (\w+) \{.*?(?:elements = \{(.*?)\}\n)?\t\}", table, re.S):
        items = []
        for el in (m.group(2) or "").split(","):
            e = re.fullmatch(r'\s*(.*?) comment "flow (\d+)" : accept\s*', el, re.S)
            if e is None:
                assert not el.strip(), f"unexpected element {el!r}"
                continue
            items.append(([k.strip() for k in e.group(1).split(" . ")], int(e.group(2))))
        maps[m.group(1)] = items
    return maps


def _in(text: str, value: int, kind: str) -> bool:
    """Does one rendered element field (a point, a range `a-b`, a CIDR, or a protocol name) hold value?"""
    names = {"tcp": 6, "udp": 17, "sctp": 132}
    if kind == "proto" and text in names:
        return value == names[text]
    if kind == "addr":
        if "-" in text:
            lo, hi = (int(ip.ip_address(x)) for x in text.split("-"))
        else:
            net = ip.ip_network(text)
            lo, hi = int(net.network_address), int(net.broadcast_address)
        return lo <= value <= hi
    if "-" in text:
        lo, hi = (int(x) for x in text.split("-"))
        return lo <= value <= hi
    return value == int(text)


def _lookup(maps: dict[str, list[tuple[list[str], int]]], name: str, values: list[tuple[int, str]]) -> int | None:
    hits = [flow for key, flow in maps.get(name, []) if all(_in(k, v, kd) for k, (v, kd) in zip(key, values))]
    assert len(hits) <= 1, f"overlapping elements in {name}: {hits}"
    return hits[0] if hits else None


ADDRS = ["10.89.3.2", "10.89.3.3", "10.1.2.3", "10.200.0.1", "192.0.2.5"]


@settings(max_examples=300, deadline=None)
@given(
    src=st.sampled_from(ADDRS[:2] + ["10.1.9.9"]),
    dst=st.sampled_from(ADDRS),
    proto=st.sampled_from([1, 6, 17]),
    port=st.sampled_from([0, 22, 53, 69, 70, 80, 90, 91, 443, 65535]),
)
def test_elements_agree_with_decider(src: str, dst: str, proto: int, port: int) -> None:
    text, inv = CASES["drop_dual_stack"]
    res = resolve(parse_policy_text(text, "p").policy, inv())
    maps = _parse_elements(compile_ruleset(res).table)
    s, d = ip.ip_address(src), ip.ip_address(dst)
    want = Decider(res).forward(s, d, proto, port)[1]
    got = None
    for name in ("c2c4", "c2c4r", "c2net4", "c2net4r", "net2c4", "net2c4r"):
        got = _lookup(maps, name, [(int(s), "addr"), (int(d), "addr"), (proto, "proto"), (port, "port")])
        if got is not None:
            break
    assert (want.flow if want else None) == got


boxes = st.lists(
    st.tuples(
        st.tuples(*[st.tuples(st.integers(0, 20), st.integers(0, 20)).map(lambda t: (min(t), max(t)))] * 2),
        st.integers(0, 5),
    ),
    max_size=8,
)


@settings(max_examples=300, deadline=None)
@given(boxes)
def test_disjoint_preserves_union_and_first_flow(bs: list) -> None:  # type: ignore[type-arg]
    out = disjoint(bs)
    for x in range(21):
        for y in range(21):
            inputs = [lab for (rx, ry), lab in bs if rx[0] <= x <= rx[1] and ry[0] <= y <= ry[1]]
            outs = [lab for (rx, ry), lab in out if rx[0] <= x <= rx[1] and ry[0] <= y <= ry[1]]
            assert len(outs) <= 1
            assert (min(inputs) if inputs else None) == (outs[0] if outs else None)
