"""The one severity table every formatter uses."""

from __future__ import annotations

from dataclasses import dataclass

from podwall.audit.findings import Severity


@dataclass(frozen=True)
class Level:
    sarif: str  # SARIF result level
    security_severity: str  # GitHub code scanning: >=9 critical, 7-8.9 high, 4-6.9 medium, <4 low
    style: str  # rich style for the table


LEVELS: dict[Severity, Level] = {
    Severity.CRITICAL: Level("error", "9.5", "bold white on red"),
    Severity.HIGH: Level("error", "8.0", "bold red"),
    Severity.MEDIUM: Level("warning", "5.5", "yellow"),
    Severity.LOW: Level("note", "3.0", "cyan"),
    Severity.INFO: Level("note", "0.0", "dim"),
}
