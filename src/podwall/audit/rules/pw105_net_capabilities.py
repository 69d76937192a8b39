from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.audit.rules._describe import what
from podwall.model import Container

NET_CAPS = ("NET_ADMIN", "NET_RAW", "ALL")


@register
class NetworkCapabilities(Rule):
    id = "PW105"
    title = "Adds NET_ADMIN or NET_RAW, or runs privileged"
    severity = Severity.HIGH
    threats = (Threat.NETWORK_ATTACK, Threat.LATERAL_MOVEMENT)
    remediation = (
        "Drop the capability (or `privileged`). If a tool really needs raw sockets, run it in a separate, "
        "short-lived container on its own network."
    )

    def container(self, c: Container, ctx: AuditContext) -> Iterator[Finding]:
        for cap in c.cap_add:
            if cap in NET_CAPS:
                yield self.finding(
                    c.name,
                    f"{what(c)} adds {cap}: it can forge source addresses, sniff its network and "
                    "reconfigure interfaces, which defeats address-based firewall rules",
                    c.line_of(f"cap_add:{cap}"),
                )
        if c.privileged:
            yield self.finding(
                c.name,
                f"{what(c)} runs privileged: it holds every capability, NET_ADMIN and NET_RAW included",
                c.line_of("privileged"),
            )
