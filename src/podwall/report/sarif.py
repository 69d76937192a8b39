"""`--format sarif`: SARIF 2.1.0 for GitHub code scanning.

Rules carry `security-severity` and `tags: ["security"]`; file findings carry a region, live findings a
logical location (the container or network). Suppressed findings are included with an in-source
suppression and its reason, as SARIF intends, so reviewers still see them.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote

from podwall import __version__
from podwall.audit.engine import AuditResult
from podwall.audit.findings import Finding
from podwall.audit.rule import Rule, all_rules
from podwall.errors import InputProblem
from podwall.report.levels import LEVELS

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFO_URI = "https://github.com/podwall/podwall"


def _uri(path: str) -> str:
    posix = PureWindowsPath(path).as_posix() if "\\" in path else path
    if PurePosixPath(posix).is_absolute():
        return "file://" + quote(posix)
    return quote(posix.removeprefix("./"))


def _rule(r: Rule) -> dict[str, Any]:
    level = LEVELS[r.severity]
    return {
        "id": r.id,
        "name": type(r).__name__,
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": f"{r.title}. Threats: {', '.join(t.description for t in r.threats)}."},
        "help": {"text": r.remediation, "markdown": f"**Remediation.** {r.remediation}"},
        "helpUri": f"{INFO_URI}/blob/main/docs/rules/{r.id}.md",
        "defaultConfiguration": {"level": level.sarif},
        "properties": {
            "tags": ["security"],
            "threats": [t.value for t in r.threats],
            "security-severity": level.security_severity,
            "problem.severity": level.sarif,
        },
    }


def _location(f: Finding) -> dict[str, Any]:
    if f.loc is None:
        return {
            "logicalLocations": [
                {"name": f.object, "kind": "resource", "fullyQualifiedName": f"podman/{f.object}"}
            ]
        }
    region: dict[str, Any] = {"startLine": f.loc.line}
    if f.loc.col:
        region["startColumn"] = f.loc.col
    return {
        "physicalLocation": {"artifactLocation": {"uri": _uri(f.loc.file)}, "region": region},
        "logicalLocations": [{"name": f.object, "kind": "resource"}],
    }


def _result(f: Finding, index: dict[str, int], reason: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "ruleId": f.rule,
        "level": LEVELS[f.severity].sarif,
        "message": {"text": f"{f.message}. Remediation: {f.remediation}"},
        "locations": [_location(f)],
        "properties": {"severity": f.severity.value, "object": f.object},
    }
    if f.rule in index:
        out["ruleIndex"] = index[f.rule]
    if reason is not None:
        out["suppressions"] = [{"kind": "inSource", "justification": reason}]
    return out


def _notification(p: InputProblem) -> dict[str, Any]:
    n: dict[str, Any] = {"level": "error", "message": {"text": p.message}}
    if p.file:
        phys: dict[str, Any] = {"artifactLocation": {"uri": _uri(p.file)}}
        if p.line:
            phys["region"] = {"startLine": p.line}
        n["locations"] = [{"physicalLocation": phys}]
    return n


def to_data(result: AuditResult, rules: list[Rule] | None = None) -> dict[str, Any]:
    rules = all_rules() if rules is None else rules
    index = {r.id: i for i, r in enumerate(rules)}
    results = [_result(f, index) for f in result.findings]
    results += [_result(s.finding, index, s.reason) for s in result.suppressed]
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "podwall",
                        "version": __version__,
                        "informationUri": INFO_URI,
                        "rules": [_rule(r) for r in rules],
                    }
                },
                "invocations": [
                    {
                        "executionSuccessful": not result.all_errors,
                        "toolExecutionNotifications": [_notification(p) for p in result.all_errors],
                    }
                ],
                "results": results,
            }
        ],
    }


def render(result: AuditResult) -> str:
    return json.dumps(to_data(result), indent=2, ensure_ascii=False) + "\n"
