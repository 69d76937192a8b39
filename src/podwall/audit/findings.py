"""Severities, seed threats and findings: plain data shared by rules, engine and formatters."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from podwall.model import Loc


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Severity) -> bool:
        return self.rank >= other.rank


_RANK = {Severity.CRITICAL: 4, Severity.HIGH: 3, Severity.MEDIUM: 2, Severity.LOW: 1, Severity.INFO: 0}


class Threat(StrEnum):
    """The seed threats podwall exists to mitigate."""

    LATERAL_MOVEMENT = "lateral-movement"
    HOST_EXPOSURE = "host-network-exposure"  # container services exposed to the host's networks
    NETWORK_ATTACK = "network-attack-from-container"  # spoofing, sniffing, ARP/ND from a compromised container

    @property
    def description(self) -> str:
        return _THREAT_TEXT[self]


_THREAT_TEXT = {
    Threat.LATERAL_MOVEMENT: "lateral movement between containers",
    Threat.HOST_EXPOSURE: "exposure of container services to the host network",
    Threat.NETWORK_ATTACK: "network attacks from a compromised container",
}


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity  # may be lower than the rule's default (e.g. PW106 with isolate=true)
    title: str
    object: str  # container, pod or network name
    message: str
    remediation: str
    threats: tuple[Threat, ...]
    loc: Loc | None  # None for live objects

    @property
    def sort_key(self) -> tuple[int, str, int, str, str]:
        if self.loc is None:
            return (1, "", 0, self.rule, self.object)
        return (0, self.loc.file, self.loc.line, self.rule, self.object)


@dataclass(frozen=True)
class Suppressed:
    finding: Finding
    reason: str
