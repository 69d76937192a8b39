"""The rule interface and registry.

A rule is a small class with class attributes (id, title, severity, threats, remediation) and up to three
hooks: `container()` and `network()` are called once per object, `inventory()` once per audit (for rules
that compare objects). Rules that need more than the inventory (the policy checks PW108/PW109) list the
context attributes in `needs`; the engine runs them only when the context provides those.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from podwall.audit.findings import Finding, Severity, Threat
from podwall.model import Container, Inventory, Loc, Network


@dataclass(frozen=True)
class AuditContext:
    inventory: Inventory
    policy: Any = None  # podwall.policy's loaded policy, for policy rules (PW108/PW109)
    extra: dict[str, Any] = field(default_factory=dict)  # room for future rules' inputs

    def provides(self, name: str) -> bool:
        return getattr(self, name, None) is not None or self.extra.get(name) is not None


class Rule:
    id: ClassVar[str]
    title: ClassVar[str]
    severity: ClassVar[Severity]
    threats: ClassVar[tuple[Threat, ...]]
    remediation: ClassVar[str]
    needs: ClassVar[frozenset[str]] = frozenset()
    kinds: ClassVar[frozenset[str]] = frozenset({"compose", "quadlet", "kube", "shell", "live"})  # where it applies

    def container(self, c: Container, ctx: AuditContext) -> Iterable[Finding]:
        return ()

    def network(self, n: Network, ctx: AuditContext) -> Iterable[Finding]:
        return ()

    def inventory(self, ctx: AuditContext) -> Iterable[Finding]:
        return ()

    def finding(self, obj: str, message: str, loc: Loc | None, severity: Severity | None = None) -> Finding:
        return Finding(
            rule=self.id,
            severity=severity or self.severity,
            title=self.title,
            object=obj,
            message=message,
            remediation=self.remediation,
            threats=self.threats,
            loc=loc,
        )


RULES: dict[str, type[Rule]] = {}


def register(cls: type[Rule]) -> type[Rule]:
    if cls.id in RULES and RULES[cls.id] is not cls:
        raise ValueError(f"rule id {cls.id} registered twice")
    RULES[cls.id] = cls
    return cls


def all_rules() -> list[Rule]:
    import podwall.audit.rules  # noqa: F401  (registers the built-in rules)

    return [RULES[k]() for k in sorted(RULES)]
