from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.model import Network

DIRECT_DRIVERS = frozenset({"macvlan", "ipvlan"})


@register
class MacvlanNetwork(Rule):
    id = "PW107"
    title = "macvlan/ipvlan network bypasses the host firewall"
    severity = Severity.MEDIUM
    threats = (Threat.HOST_EXPOSURE, Threat.LATERAL_MOVEMENT)
    kinds = frozenset({"compose", "quadlet", "shell", "live"})
    remediation = (
        "Use a bridge network with published ports, or filter on the upstream network: traffic of "
        "macvlan/ipvlan containers never crosses the host's forward path."
    )

    def network(self, n: Network, ctx: AuditContext) -> Iterator[Finding]:
        if n.driver in DIRECT_DRIVERS:
            yield self.finding(
                n.name,
                f"network `{n.name}` uses the {n.driver} driver: its containers sit directly on the parent "
                "interface's network, where the host firewall cannot filter them",
                n.line_of("driver"),
            )
