"""`podwall audit` end to end on files: discovery, exit codes, suppression, exclude, formats, --live."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner, Result

import podwall.cli.audit as audit_cli
from podwall.audit.engine import run_audit
from podwall.audit.findings import Finding
from podwall.audit.rule import RULES, Rule, register
from podwall.cli import cli
from podwall.errors import EnvironmentProblem
from podwall.model import Container, Inventory, NetMode, Network
from podwall.report import json_report, sarif, table
from tests.conftest import ROOT


@dataclass
class Ran:
    exit_code: int
    stdout: str


def run(*args: str) -> Ran:
    """Like `podwall.cli.main`: standalone_mode=False, and the command's return value is the exit code."""
    r: Result = CliRunner().invoke(cli, ["audit", *args], catch_exceptions=False, standalone_mode=False)
    return Ran(int(r.return_value or 0), r.stdout)


def write(base: Path, rel: str, text: str) -> Path:
    p = base / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


# -- discovery --------------------------------------------------------------------------------------


def test_discovery_recognises_by_name_and_content_and_skips_the_rest(tmp_path: Path) -> None:
    write(tmp_path, "a/compose.yml", "services:\n  w: {network_mode: host}\n")
    write(tmp_path, "a/stack.yaml", "services:\n  w: {network_mode: host}\n")  # by content
    write(tmp_path, "k/pod.yml", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {hostNetwork: true}\n")
    write(tmp_path, "q/x.container", "[Container]\nNetwork=host\n")
    write(tmp_path, "bin/deploy", "#!/usr/bin/env bash\npodman run --network host i\n")  # by shebang
    write(tmp_path, ".github/workflows/ci.yml", "on: push\njobs: {t: {runs-on: x, services: {db: {image: p}}}}\n")
    write(tmp_path, ".gitlab-ci.yml", "services:\n  - docker:dind\n")
    write(tmp_path, "chart/templates/dep.yaml", "apiVersion: apps/v1\nkind: Deployment\n{{- if .Values.x }}\nspec: {{ .Values.s }}\n{{- end }}\n")
    write(tmp_path, "notes.txt", "podman run --network host i\n")
    for skipped in (".git/hooks/x.sh", "node_modules/m/run.sh", ".venv/bin/a.sh", "env2/pyvenv.cfg", "env2/bin/a.sh"):
        write(tmp_path, skipped, "podman run --network host i\n")
    result = run_audit([str(tmp_path)])
    assert result.all_errors == []
    files = sorted(Path(f).relative_to(tmp_path).as_posix() for f in result.files)
    assert files == ["a/compose.yml", "a/stack.yaml", "bin/deploy", "k/pod.yml", "q/x.container"]
    assert {f.rule for f in result.findings} >= {"PW101"}


def test_parse_error_exit_2_names_file_and_line_and_other_files_are_audited(tmp_path: Path) -> None:
    write(tmp_path, "bad/compose.yaml", "services:\n  web:\n    ports: [80:80\n  db: {}\n")
    write(tmp_path, "bad/pod.yaml", "apiVersion: v1\nkind: Pod\nspec:\n  containers: [\n")  # looks like kube
    write(tmp_path, "good.sh", "podman run --network host i\n")
    r = run("--format", "json", str(tmp_path))
    assert r.exit_code == 2
    data = json.loads(r.stdout)
    assert [f["rule"] for f in data["findings"]] == ["PW101"]
    errs = {(Path(e["file"]).name, e["line"]) for e in data["errors"]}
    assert ("compose.yaml", 4) in errs or ("compose.yaml", 3) in errs
    assert any(name == "pod.yaml" and line for name, line in errs)


def test_missing_path_is_an_input_error(tmp_path: Path) -> None:
    assert run(str(tmp_path / "nope")).exit_code == 2


def test_exclude_globs(tmp_path: Path) -> None:
    write(tmp_path, "vendor/x.sh", "podman run --network host i\n")
    write(tmp_path, "ok/y.sh", "podman run --network host i\n")
    write(tmp_path, "ok/z.container", "[Container]\nNetwork=host\n")
    out = json.loads(run("--format", "json", "--exclude", "vendor", "--exclude", "*.container", str(tmp_path)).stdout)
    assert [Path(f["file"]).name for f in out["findings"]] == ["y.sh"]


# -- exit codes and --fail-on -----------------------------------------------------------------------


def test_exit_codes_follow_fail_on(tmp_path: Path) -> None:
    f = write(tmp_path, "q/a.container", "[Container]\nImage=x\n")  # PW103 only (low)
    assert run(str(f)).exit_code == 1
    assert run("--fail-on", "medium", str(f)).exit_code == 0
    clean = write(tmp_path, "q/b.container", "[Container]\nNetwork=app.network\n")
    r = run(str(clean))
    assert r.exit_code == 0 and "0 findings" in r.stdout


# -- suppression ------------------------------------------------------------------------------------


def test_suppression_needs_a_reason_and_the_right_line(tmp_path: Path) -> None:
    f = write(
        tmp_path,
        "run.sh",
        "podman run -p 80:80 --network a i  # podwall: ignore PW104 public web server\n"
        "# podwall: ignore PW104 health checks from the LAN\n"
        "podman run -p 81:81 --network a i\n"
        "podman run -p 82:82 --network a i  # podwall: ignore PW104\n"
        "# podwall: ignore PW105 wrong rule\n"
        "podman run -p 83:83 --network a i\n"
        "# podwall: ignore PW104 too far above\n\n"
        "podman run -p 84:84 --network a i\n",
    )
    result = run_audit([str(f)])
    assert sorted(s.finding.loc.line for s in result.suppressed if s.finding.loc) == [1, 3]
    assert [s.reason for s in result.suppressed] == ["public web server", "health checks from the LAN"]
    kept = {f.loc.line: f.message for f in result.findings if f.loc}
    assert sorted(kept) == [4, 6, 9]
    assert "gives no reason" in kept[4]


# -- formats ----------------------------------------------------------------------------------------


def _mixed_result(tmp_path: Path) -> Any:
    f = write(tmp_path, "compose.yaml", "services:\n  w:\n    network_mode: host\n  v:\n    networks: [n]\n    ports: ['[::]:1:1']  # podwall: ignore PW104 lab\n")
    write(tmp_path, "broken.container", "[Container]\nno equals sign\n")
    live = Inventory(containers=(Container(name="live-web", network_mode=NetMode.HOST),), networks=(Network(name="podman"),))
    return run_audit([str(f.parent)], live=live)


def test_json_shape_is_exact(tmp_path: Path) -> None:
    data = json.loads(json_report.render(_mixed_result(tmp_path)))
    assert set(data) == {"findings", "errors"}
    keys = {"rule", "severity", "title", "file", "line", "object", "message", "remediation", "threats"}
    assert all(set(f) == keys for f in data["findings"])
    assert all(set(e) == {"file", "line", "message"} for e in data["errors"])
    live = [f for f in data["findings"] if f["object"] == "live-web"]
    assert live and live[0]["file"] is None and live[0]["line"] is None
    assert any(f["file"] and f["line"] == 3 for f in data["findings"])
    assert data["errors"][0]["line"] == 2 and data["errors"][0]["file"].endswith("broken.container")


def test_sarif_validates_and_has_rule_metadata(tmp_path: Path, sarif_schema: dict) -> None:
    doc = sarif.to_data(_mixed_result(tmp_path))
    jsonschema.validate(doc, sarif_schema)
    run0 = doc["runs"][0]
    rules = run0["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == sorted(RULES)
    assert all(r["properties"]["tags"] == ["security"] and float(r["properties"]["security-severity"]) > 0 for r in rules)
    results = run0["results"]
    live = [r for r in results if r["properties"]["object"] == "live-web"]
    assert live and "physicalLocation" not in live[0]["locations"][0] and live[0]["locations"][0]["logicalLocations"]
    filed = [r for r in results if r["ruleId"] == "PW101" and "physicalLocation" in r["locations"][0]]
    assert filed[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("compose.yaml")
    assert filed[0]["locations"][0]["physicalLocation"]["region"]["startLine"] == 3
    assert [r["suppressions"][0]["justification"] for r in results if "suppressions" in r] == ["lab"]
    assert run0["invocations"][0]["executionSuccessful"] is False


def test_sarif_of_real_examples_validates(sarif_schema: dict) -> None:
    r = run("--format", "sarif", str(ROOT / "examples" / "audit"))
    assert r.exit_code == 1
    jsonschema.validate(json.loads(r.stdout), sarif_schema)


def test_table_renders_findings_and_summary(tmp_path: Path) -> None:
    from rich.console import Console

    console = Console(record=True, width=200)
    console.print(table.render(_mixed_result(tmp_path)))
    text = console.export_text()
    assert "PW101" in text and "live-web" in text and "1 suppressed" in text and "1 error" in text


def test_examples_show_every_rule() -> None:
    r = run("--format", "json", str(ROOT / "examples" / "audit"))
    assert r.exit_code == 1
    policy_rules = {k for k, v in RULES.items() if "policy" in v.needs}  # need --policy (and --live)
    assert {f["rule"] for f in json.loads(r.stdout)["findings"]} == set(RULES) - policy_rules


# -- --live ---------------------------------------------------------------------------------------


def test_live_uses_read_inventory(monkeypatch: pytest.MonkeyPatch) -> None:
    inv = Inventory(containers=(Container(name="web", network_mode=NetMode.HOST),))
    monkeypatch.setattr(audit_cli, "_read_live", lambda: inv)
    r = run("--live", "--format", "json")
    assert r.exit_code == 1
    (f,) = json.loads(r.stdout)["findings"]
    assert (f["rule"], f["object"], f["file"], f["line"]) == ("PW101", "web", None, None)


def test_live_failure_is_exit_3_not_clean(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom() -> Inventory:
        raise EnvironmentProblem("podman is not installed")

    monkeypatch.setattr(audit_cli, "_read_live", boom)
    r = run("--live", "--format", "json")
    assert r.exit_code == 3
    assert "podman is not installed" in json.loads(r.stdout)["errors"][0]["message"]


# -- a crashing rule is never a clean result --------------------------------------------------------


@pytest.fixture
def crashing_rule() -> Iterator[None]:
    from podwall.audit.findings import Severity, Threat

    @register
    class Boom(Rule):
        id = "PW199"
        title = "test rule that crashes"
        severity = Severity.HIGH
        threats = (Threat.LATERAL_MOVEMENT,)
        remediation = "none"

        def container(self, c: Container, ctx: Any) -> list[Finding]:
            raise RuntimeError("kaboom")

    try:
        yield
    finally:
        del RULES["PW199"]


def test_crashing_rule_is_exit_3(tmp_path: Path, crashing_rule: None) -> None:
    f = write(tmp_path, "x.container", "[Container]\nNetwork=app.network\n")
    r = run("--format", "json", str(f))
    assert r.exit_code == 3
    (err,) = json.loads(r.stdout)["errors"]
    assert "PW199" in err["message"] and "kaboom" in err["message"] and err["line"] == 1
