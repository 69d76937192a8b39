"""`--format table`: a rich table of findings, then a one-line summary. Returns a renderable."""

from __future__ import annotations

from collections import Counter

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from podwall.audit.engine import AuditResult
from podwall.audit.findings import Severity
from podwall.report.levels import LEVELS


def render(result: AuditResult) -> RenderableType:
    parts: list[RenderableType] = []
    if result.findings:
        t = Table(show_lines=False, header_style="bold", expand=False)
        t.add_column("Severity", no_wrap=True)
        t.add_column("Rule", no_wrap=True)
        t.add_column("Where", overflow="fold")
        t.add_column("Object", overflow="fold")
        t.add_column("Finding", overflow="fold", ratio=1)
        for f in result.findings:
            where = f"{f.loc.file}:{f.loc.line}" if f.loc else "live"
            t.add_row(
                Text(f.severity.value, style=LEVELS[f.severity].style), f.rule, where, f.object, f.message
            )
        parts.append(t)
    counts = Counter(f.severity for f in result.findings)
    by_sev = ", ".join(f"{counts[s]} {s.value}" for s in Severity if counts[s])
    summary = f"{len(result.findings)} finding{'s' if len(result.findings) != 1 else ''}"
    summary += f" ({by_sev})" if by_sev else ""
    summary += f" in {len(result.files)} file{'s' if len(result.files) != 1 else ''}"
    if result.suppressed:
        summary += f", {len(result.suppressed)} suppressed"
    if result.all_errors:
        summary += f", {len(result.all_errors)} error{'s' if len(result.all_errors) != 1 else ''}"
    parts.append(Text(summary, style="bold"))
    return Group(*parts)
