"""PW108/PW109 (policy checks) and policy exceptions in `podwall audit --policy`."""

from __future__ import annotations

import json
import re
from pathlib import Path

from click.testing import CliRunner

from podwall.audit.engine import audit_inventory
from podwall.cli import _load_commands, cli
from podwall.policy.load import load_policy, parse_policy_text
from tests.conftest import FIXTURES
from tests.unit.invbuild import SHOP_POLICY, shop

PW109 = FIXTURES / "audit" / "PW109" / "policy"


def _run(*args: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    _load_commands()
    r = CliRunner().invoke(cli, list(args), standalone_mode=False)
    assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
    return r.return_value, json.loads(r.output)


def test_pw109_fail_fixture_lines(tmp_path: Path) -> None:
    fail = PW109 / "fail.yaml"
    want = sorted(int(x) for x in re.search(r"expect PW109 at ([\d,]+)", fail.read_text()).group(1).split(","))  # type: ignore[union-attr]
    rc, data = _run("audit", str(tmp_path), "--policy", str(fail), "--format", "json")
    got = sorted(f["line"] for f in data["findings"] if f["rule"] == "PW109")
    assert got == want and rc == 1
    assert {f["file"] for f in data["findings"]} == {str(fail)}
    msgs = " ".join(f["message"] for f in data["findings"])
    assert "gives no reason" in msgs and "expired on 2020-01-01" in msgs and "no expiry date" in msgs


def test_pw109_pass_fixture(tmp_path: Path) -> None:
    rc, data = _run("audit", str(tmp_path), "--policy", str(PW109 / "pass.yaml"), "--format", "json")
    assert rc == 0 and data["findings"] == []


def test_pw108_reports_unmatched_managed_containers() -> None:
    lp = parse_policy_text(SHOP_POLICY, "p.yaml")
    findings, crashes = audit_inventory(shop(), policy=lp)
    assert not crashes
    pw108 = [f for f in findings if f.rule == "PW108"]
    assert [(f.object, f.loc) for f in pw108] == [("stray", None)]
    # without a policy the rule does not run
    assert not [f for f in audit_inventory(shop())[0] if f.rule == "PW108"]


def test_valid_exception_suppresses_live_finding_and_invalid_does_not(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    policy = tmp_path / "p.yaml"
    policy.write_text(SHOP_POLICY + "exceptions:\n"
                      "  - {container: hostnet, rule: PW101, reason: needs host counters, expires: 2099-01-01}\n")
    import podwall.cli.audit as audit_cli

    monkeypatch.setattr(audit_cli, "_read_live", shop)
    rc, data = _run("audit", "--live", "--policy", str(policy), "--format", "json")
    assert not [f for f in data["findings"] if f["rule"] == "PW101"]
    assert [f["object"] for f in data["findings"] if f["rule"] == "PW108"] == ["stray"]
    policy.write_text(SHOP_POLICY + "exceptions:\n  - {container: hostnet, rule: PW101, expires: 2099-01-01}\n")
    rc, data = _run("audit", "--live", "--policy", str(policy), "--format", "json")
    assert [f["object"] for f in data["findings"] if f["rule"] == "PW101"] == ["hostnet"]
    assert [f["rule"] for f in data["findings"] if f["rule"] == "PW109"] == ["PW109"]


def test_invalid_policy_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("version: 1\nflows: [{from: a, to: b}]\n")
    _load_commands()
    r = CliRunner().invoke(cli, ["audit", str(tmp_path), "--policy", str(bad)], standalone_mode=False)
    assert r.exception is not None and getattr(r.exception, "rc", None) == 2
    assert load_policy  # imported for the message path; loading errors are InputError (exit 2)


def test_pw108_ignores_containers_read_from_files() -> None:
    """`podwall audit FILES --policy` (no --live): a Quadlet/compose container is not a managed live one."""
    import dataclasses

    from podwall.model import Loc

    inv = shop()
    from_files = dataclasses.replace(
        inv, containers=tuple(dataclasses.replace(c, loc=Loc("x.container", 1)) for c in inv.containers)
    )
    lp = parse_policy_text(SHOP_POLICY, "p.yaml")
    assert not [f for f in audit_inventory(from_files, policy=lp)[0] if f.rule == "PW108"]


def test_pw106_is_info_for_networks_the_policy_manages() -> None:
    lp = parse_policy_text(SHOP_POLICY, "p.yaml")
    with_policy = {f.object: f.severity.value for f in audit_inventory(shop(), policy=lp)[0] if f.rule == "PW106"}
    without = {f.object: f.severity.value for f in audit_inventory(shop())[0] if f.rule == "PW106"}
    assert without.get("front") == "medium" and with_policy.get("front") == "info"
    assert with_policy.get("plain") == "medium"  # not in the policy's networks: still a finding
