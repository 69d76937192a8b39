"""Per-rule pass/fail fixtures for every file kind a rule applies to, plus the rule meta-test.

A fail fixture states what it expects in a comment: `# expect PW104 at 6,7`. The rule must report exactly
those lines (SPEC §4 line conventions), and a pass fixture must give no finding of its rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from podwall.audit.engine import audit_inventory, run_audit
from podwall.audit.findings import Severity, Threat
from podwall.audit.rule import RULES, all_rules
from podwall.model import Attachment, Container, Inventory, NetMode, Network, PortMapping, frozen_map
from tests.conftest import FIXTURES, ROOT

AUDIT_FIXTURES = FIXTURES / "audit"
FILE_KINDS = ("compose", "quadlet", "kube", "shell")
_EXPECT = re.compile(r"#\s*expect\s+(PW\d+)\s+at\s+([\d,\s]+)")


def _fixture_files(kind: str) -> list[Path]:
    return sorted(p for p in AUDIT_FIXTURES.glob(f"PW*/{kind}/*") if p.is_file())


def _params(prefix: str) -> list[object]:
    return [
        pytest.param(p, id=f"{p.parent.parent.name}-{p.parent.name}-{p.name}")
        for kind in FILE_KINDS
        for p in _fixture_files(kind)
        if p.name.startswith(prefix)
    ]


@pytest.mark.parametrize("path", _params("fail"))
def test_fail_fixture_reports_exact_lines(path: Path) -> None:
    m = _EXPECT.search(path.read_text())
    assert m, f"{path} lacks an `# expect PWxxx at LINES` comment"
    rule, lines = m.group(1), sorted(int(x) for x in re.split(r"[,\s]+", m.group(2).strip()) if x)
    result = run_audit([str(path)])
    assert not result.all_errors, result.all_errors
    got = sorted(f.loc.line for f in result.findings if f.rule == rule and f.loc)
    assert got == lines, f"{rule} in {path.name}: expected lines {lines}, got {got}"
    assert all(f.loc and f.loc.file == str(path) for f in result.findings)


@pytest.mark.parametrize("path", _params("pass"))
def test_pass_fixture_has_no_finding_of_its_rule(path: Path) -> None:
    rule = path.parent.parent.name
    result = run_audit([str(path)])
    assert not result.all_errors, result.all_errors
    assert [f for f in result.findings if f.rule == rule] == []


def test_every_rule_is_complete() -> None:
    """Meta-test: doc page, severity, threats, title, remediation, and fixtures for each file kind."""
    rules = all_rules()
    assert [r.id for r in rules] == [f"PW{n}" for n in range(101, 110)]
    for r in rules:
        assert re.fullmatch(r"PW\d{3}", r.id)
        assert isinstance(r.severity, Severity)
        assert r.threats and all(isinstance(t, Threat) for t in r.threats)
        assert r.title and "\n" not in r.title and len(r.title) < 70
        assert r.remediation
        doc = ROOT / "docs" / "rules" / f"{r.id}.md"
        assert doc.is_file(), f"missing {doc}"
        assert r.id in doc.read_text().splitlines()[0]
        for kind in sorted(r.kinds - {"live"}):
            d = AUDIT_FIXTURES / r.id / kind
            assert list(d.glob("pass*")) and list(d.glob("fail*")), f"{r.id} needs pass+fail fixtures in {d}"
    assert set(RULES) == {r.id for r in rules}


# -- live objects (loc=None): the same rules, with the container's name as object -------------------


def _live() -> Inventory:
    return Inventory(
        containers=(
            Container(name="hostnet", network_mode=NetMode.HOST),
            Container(name="sidecar", network_mode=NetMode.CONTAINER, mode_target="app"),
            Container(name="member", pod="shop", network_mode=NetMode.CONTAINER, mode_target="abc123infra"),
            Container(name="web", network_mode=NetMode.BRIDGE, networks=(Attachment("podman"),),
                      ports=(PortMapping(80, host_port=8080, host_ip="0.0.0.0"), PortMapping(443, host_port=8443, host_ip="127.0.0.1"))),
            Container(name="tool", network_mode=NetMode.BRIDGE, networks=(Attachment("lab"),), cap_add=("NET_ADMIN",)),
        ),
        networks=(
            Network(name="podman"),
            Network(name="lab", internal=True),
            Network(name="iso", isolate="true"),
            Network(name="strict", isolate="strict"),
            Network(name="lan", driver="macvlan"),
        ),
    )  # fmt: skip


def test_live_inventory_findings() -> None:
    findings, crashes = audit_inventory(_live())
    assert crashes == []
    got = {(f.rule, f.object, f.severity.value) for f in findings}
    assert got == {
        ("PW101", "hostnet", "high"),
        ("PW102", "sidecar", "medium"),
        ("PW103", "web", "low"),
        ("PW104", "web", "medium"),
        ("PW105", "tool", "high"),
        ("PW106", "podman", "medium"),
        ("PW106", "iso", "low"),  # isolate=true only separates isolated networks from each other
        ("PW107", "lan", "medium"),
    }
    assert all(f.loc is None for f in findings)


def test_pw103_messages_differ_for_project_default_and_podman_bridge(tmp_path: Path) -> None:
    f = tmp_path / "compose.yaml"
    f.write_text("name: shop\nservices:\n  a: {image: x}\n  b: {network_mode: bridge}\n")
    by_obj = {x.object: x.message for x in run_audit([str(f)]).findings if x.rule == "PW103"}
    assert "`shop_default`" in by_obj["a"] and "no `networks:`" in by_obj["a"]
    assert "`network_mode: bridge`" in by_obj["b"] and "`podman`" in by_obj["b"]


def test_compose_declared_default_network_is_a_choice(tmp_path: Path) -> None:
    f = tmp_path / "compose.yaml"
    f.write_text("# podwall: podman\nservices:\n  a: {image: x}\nnetworks:\n  default: {internal: true}\n")
    assert [x for x in run_audit([str(f)]).findings if x.rule == "PW103"] == []


def test_pw104_not_for_host_network_and_publish_all(tmp_path: Path) -> None:
    inv = Inventory(containers=(Container(name="h", network_mode=NetMode.HOST, ports=(PortMapping(80),)),))
    assert [f.rule for f in audit_inventory(inv)[0]] == ["PW101"]
    s = tmp_path / "run.sh"
    s.write_text("podman run -P --network app img\n")
    msgs = [f.message for f in run_audit([str(s)]).findings if f.rule == "PW104"]
    assert len(msgs) == 1 and "not known statically" in msgs[0]


def test_locs_point_at_values_and_labels_survive() -> None:
    c = Container(name="x", cap_add=("NET_RAW",), network_mode=NetMode.BRIDGE, networks=(Attachment("n"),),
                  labels=frozen_map({"a": "b"}))  # fmt: skip
    (f,) = audit_inventory(Inventory(containers=(c,)))[0]
    assert f.rule == "PW105" and f.loc is None
