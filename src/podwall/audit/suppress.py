"""Inline suppressions: `# podwall: ignore PW104 <reason>` on the finding's line or the line just above.

A reason is required: a suppression without one does not apply, and the finding says so. `;` also starts a
comment (Quadlet units). Several IDs may be listed: `# podwall: ignore PW104,PW105 lab only`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from podwall.audit.findings import Finding, Suppressed

_MARK = re.compile(
    r"[#;]\s*podwall:\s*ignore\s+(?P<ids>PW\d+(?:\s*,\s*PW\d+)*)(?P<reason>[^\n]*)$", re.IGNORECASE
)


@dataclass(frozen=True)
class Suppression:
    line: int
    rules: frozenset[str]
    reason: str  # "" when missing: then it does not apply


def parse(text: str) -> dict[int, list[Suppression]]:
    """Suppressions by 1-based line."""
    out: dict[int, list[Suppression]] = {}
    if "podwall" not in text:
        return out
    for i, line in enumerate(text.splitlines(), start=1):
        if "podwall" not in line:
            continue
        m = _MARK.search(line)
        if m is None:
            continue
        ids = frozenset(x.strip().upper() for x in m.group("ids").split(","))
        reason = m.group("reason").strip().lstrip("-:—– ").strip()
        out.setdefault(i, []).append(Suppression(i, ids, reason))
    return out


def apply(findings: Iterable[Finding], texts: Mapping[str, str]) -> tuple[list[Finding], list[Suppressed]]:
    """(findings still reported, findings suppressed with their reason)."""
    cache: dict[str, dict[int, list[Suppression]]] = {}
    kept: list[Finding] = []
    suppressed: list[Suppressed] = []
    for f in findings:
        if f.loc is None or f.loc.file not in texts:
            kept.append(f)
            continue
        marks = cache.setdefault(f.loc.file, parse(texts[f.loc.file]))
        candidates = [s for ln in (f.loc.line, f.loc.line - 1) for s in marks.get(ln, ()) if f.rule in s.rules]
        valid = next((s for s in candidates if s.reason), None)
        if valid is not None:
            suppressed.append(Suppressed(f, valid.reason))
        elif candidates:
            note = f" (the suppression on line {candidates[0].line} is ignored: it gives no reason)"
            kept.append(replace(f, message=f.message + note))
        else:
            kept.append(f)
    return kept, suppressed
