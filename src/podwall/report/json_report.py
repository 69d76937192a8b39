"""`--format json`: {"findings": [...], "errors": [...]}, file/line null for live objects."""

from __future__ import annotations

import json
from typing import Any

from podwall.audit.engine import AuditResult
from podwall.audit.findings import Finding
from podwall.errors import InputProblem


def finding_dict(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule,
        "severity": f.severity.value,
        "title": f.title,
        "file": f.loc.file if f.loc else None,
        "line": f.loc.line if f.loc else None,
        "object": f.object,
        "message": f.message,
        "remediation": f.remediation,
        "threats": [t.value for t in f.threats],
    }


def error_dict(p: InputProblem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "message": p.message}


def to_data(result: AuditResult) -> dict[str, Any]:
    return {
        "findings": [finding_dict(f) for f in result.findings],
        "errors": [error_dict(p) for p in result.all_errors],
    }


def render(result: AuditResult) -> str:
    return json.dumps(to_data(result), indent=2, ensure_ascii=False) + "\n"
