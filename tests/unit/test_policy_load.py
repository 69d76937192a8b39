from __future__ import annotations

import json
from pathlib import Path

import pytest

from podwall.errors import InputError
from podwall.policy.load import load_policy, parse_policy_text
from podwall.policy.schema import json_schema
from tests.unit.invbuild import SHOP_POLICY


def errors(text: str) -> list[str]:
    with pytest.raises(InputError) as ei:
        parse_policy_text(text, "p.yaml")
    return [p.render() for p in ei.value.problems]


def test_shop_policy_loads_with_flow_lines() -> None:
    lp = parse_policy_text(SHOP_POLICY, "p.yaml")
    assert len(lp.policy.flows) == 6
    assert [loc.line for loc in lp.flow_locs] == [10, 11, 12, 13, 14, 15]
    assert lp.workload_locs["api"].line == 7


def test_invalid_yaml_has_line_and_column() -> None:
    (e,) = errors("version: 1\nflows:\n  - from: [web\n")
    assert e.startswith("p.yaml:4:") or e.startswith("p.yaml:3:"), e
    assert "invalid YAML" in e


def test_unknown_key_with_suggestion() -> None:
    (e,) = errors("version: 1\nnetworks:\n  a:\n    internl: true\n")
    assert e == "p.yaml:4:5: networks.a.internl: unknown key 'internl' (did you mean 'internal'?)"


def test_bad_port_points_at_the_item() -> None:
    text = "version: 1\nworkloads:\n  a: {containers: [a]}\nflows:\n  - from: a\n    to: a\n    ports: ['80/tcp', '5432/tcpx']\n"
    (e,) = errors(text)
    assert e.startswith("p.yaml:7:23: flows[0].ports[1]: '5432/tcpx' is not PORT/PROTO"), e


@pytest.mark.parametrize("port", ["0/tcp", "70000/tcp", "90-80/udp", "80", "80/icmp"])
def test_bad_ports_rejected(port: str) -> None:
    text = f"version: 1\nworkloads:\n  a: {{containers: [a]}}\nflows:\n  - {{from: a, to: a, ports: ['{port}']}}\n"
    (e,) = errors(text)
    assert "flows[0].ports[0]" in e


def test_empty_ports_is_an_error() -> None:
    (e,) = errors("version: 1\nworkloads:\n  a: {containers: [a]}\nflows:\n  - {from: a, to: a, ports: []}\n")
    assert "omit `ports`" in e


def test_unknown_workload_in_flow_with_suggestion() -> None:
    (e,) = errors("version: 1\nworkloads:\n  api: {containers: [a]}\nflows:\n  - from: apy\n    to: host\n")
    assert e == "p.yaml:5:11: flows[0].from: unknown workload 'apy' (did you mean 'api'?)"


def test_overlapping_subnets() -> None:
    (e,) = errors("version: 1\nnetworks:\n  a: {subnet: 10.1.0.0/16}\n  b: {subnet: 10.1.2.0/24}\n")
    assert "p.yaml:4:" in e and "overlaps 10.1.0.0/16 of network 'a'" in e


@pytest.mark.parametrize(
    ("flow", "needle"),
    [
        ("{from: host, to: a}", "host's own connections"),
        ("{from: world, to: host}", "`to: host` needs a workload"),
        ("{from: world, to: {cidr: 10.0.0.0/8}}", "workload on at least one side"),
        ("{from: a, to: {cidr: 10.0.0.1/8}}", "not a CIDR"),
        ("{from: a, to: 7}", "expected a workload name"),
    ],
)
def test_meaningless_flows(flow: str, needle: str) -> None:
    (e,) = errors(f"version: 1\nworkloads:\n  a: {{containers: [a]}}\nflows:\n  - {flow}\n")
    assert needle in e and e.startswith("p.yaml:5:"), e


def test_all_problems_at_once_sorted_by_line() -> None:
    es = errors("version: 2\nbogus: 1\nworkloads:\n  a: {}\n")
    assert len(es) == 3
    assert [e.split(":")[1] for e in es] == sorted(e.split(":")[1] for e in es)


def test_yaml_1_2_no_sexagesimal_and_strict_bools() -> None:
    (e,) = errors("version: 1\nnetworks:\n  a: {internal: yes}\n")
    assert "networks.a.internal" in e


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as ei:
        load_policy(tmp_path / "nope.yaml")
    assert "cannot read policy" in str(ei.value)


def test_json_schema_is_json_and_names_flows() -> None:
    s = json_schema()
    json.dumps(s)
    assert "flows" in s["properties"] and s["title"] == "podwall policy"


def test_impossible_dates_and_unknown_rules_in_exceptions_have_lines() -> None:
    text = ("version: 1\nworkloads:\n  x: {containers: [x]}\nexceptions:\n"
            "  - {container: x, rule: PW101, reason: r, expires: 2020-13-01}\n"
            "  - {container: x, rule: PW999, reason: r, expires: 2099-01-01}\n"
            "  - {container: x, rule: PW101, reason: r, expires: 2027-02-30}\n")
    es = errors(text)
    assert es[0].startswith("p.yaml:5:53: exceptions[0].expires: ") and "month" in es[0]
    assert es[1].startswith("p.yaml:6:26: exceptions[1].rule: no rule PW999")
    assert es[2].startswith("p.yaml:7:53: exceptions[2].expires: ") and "day" in es[2]
    import datetime as dt

    ok = parse_policy_text(text.split("  - {container: x, rule: PW101, reason: r, expires: 2020")[0]
                           + "  - {container: x, rule: PW101, reason: r, expires: 2099-01-01}\n", "p.yaml")
    assert ok.policy.exceptions[0].expires == dt.date(2099, 1, 1)


def test_policy_that_is_not_utf8_names_file_line_column(tmp_path: Path) -> None:
    f = tmp_path / "p.yaml"
    f.write_bytes(b"version: 1\nmode: \xff\xfe\n")
    with pytest.raises(InputError) as ei:
        load_policy(f)
    assert [p.render() for p in ei.value.problems] == [f"{f}:2:7: not valid UTF-8 text"]
