from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.model import Network


@register
class BridgeNotIsolated(Rule):
    id = "PW106"
    title = "Bridge network not isolated from other networks"
    severity = Severity.MEDIUM
    threats = (Threat.LATERAL_MOVEMENT,)
    kinds = frozenset({"compose", "quadlet", "shell", "live"})
    remediation = (
        "Create it with `--internal` if it needs no outside access, or with `-o isolate=strict` "
        "(Quadlet `Options=isolate=strict`, compose `driver_opts: {isolate: strict}`); or let a podwall "
        "policy enforce which networks may talk."
    )

    def network(self, n: Network, ctx: AuditContext) -> Iterator[Finding]:
        if n.driver != "bridge" or n.isolated:
            return
        if not n.podman_targeted:
            return  # a compose file that may run on Docker, whose isolation rules differ
        if n.isolate == "true":
            yield self.finding(
                n.name,
                f"network `{n.name}` has `isolate=true`: that only separates it from other isolated networks; "
                "containers on non-isolated networks can still reach it",
                n.line_of("isolate"),
                severity=Severity.LOW,
            )
            return
        if ctx.policy is not None and n.name in ctx.policy.policy.networks:
            # podwall's table is the isolation here (default deny across networks and inside the bridge);
            # `podwall status` / `podwall verify` show whether it is loaded and holds
            yield self.finding(
                n.name,
                f"bridge network `{n.name}` is neither internal nor isolated in Podman; the podwall policy "
                "manages it, so podwall's table denies what no flow allows once applied",
                n.loc,
                severity=Severity.INFO,
            )
            return
        yield self.finding(
            n.name,
            f"bridge network `{n.name}` is neither internal nor isolated: Podman routes traffic between it and "
            "other networks on this host",
            n.loc,
        )
