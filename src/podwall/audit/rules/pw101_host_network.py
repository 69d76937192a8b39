from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.audit.rules._describe import what
from podwall.model import Container, NetMode


@register
class HostNetwork(Rule):
    id = "PW101"
    title = "Shares the host network namespace"
    severity = Severity.HIGH
    threats = (Threat.HOST_EXPOSURE, Threat.LATERAL_MOVEMENT)
    remediation = (
        "Attach it to a dedicated bridge network and publish only the ports it serves, bound to a "
        "specific address (e.g. 127.0.0.1:8080:80)."
    )

    def container(self, c: Container, ctx: AuditContext) -> Iterator[Finding]:
        if c.network_mode is NetMode.HOST:
            who = f"{what(c)} and all its containers use" if c.infra else f"{what(c)} uses"
            yield self.finding(
                c.name,
                f"{who} the host's network namespace: every socket opened there is on the host's "
                "interfaces, reaches everything the host reaches, and no container firewall can filter it",
                c.line_of("network_mode"),
            )
