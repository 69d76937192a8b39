from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.audit.rules._describe import what
from podwall.model import Container, NetMode


@register
class SharedNamespace(Rule):
    id = "PW102"
    title = "Shares another container's network namespace"
    severity = Severity.MEDIUM
    threats = (Threat.LATERAL_MOVEMENT,)
    kinds = frozenset({"compose", "quadlet", "shell", "live"})
    remediation = (
        "Give it its own network namespace on a bridge network and allow only the flows it needs; if the "
        "containers really belong together, make them members of one pod."
    )

    def container(self, c: Container, ctx: AuditContext) -> Iterator[Finding]:
        if c.network_mode is NetMode.NS:
            yield self.finding(
                c.name,
                f"{what(c)} joins the network namespace at `{c.mode_target}`: it shares every interface, "
                "address and listening socket with whatever lives there",
                c.line_of("network_mode"),
            )
        elif c.network_mode is NetMode.CONTAINER and not c.pod:
            # Pod members show `container:<infra>` in live data: that is the pod's design, not a finding.
            peer = "service" if c.kind == "compose-service" else "container"
            yield self.finding(
                c.name,
                f"{what(c)} shares the network namespace of {peer} `{c.mode_target}`: each can reach the "
                "other's loopback-only services, and a compromise of one is a compromise of both networks",
                c.line_of("network_mode"),
            )
