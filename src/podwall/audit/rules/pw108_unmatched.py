from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register


@register
class UnmatchedContainer(Rule):
    """A managed container (on a policy network) that no workload covers: podwall denies all its new
    connections, which is safe but almost always a forgotten workload or a stray container."""

    id = "PW108"
    title = "Managed container matches no workload"
    severity = Severity.MEDIUM
    threats = (Threat.LATERAL_MOVEMENT,)
    remediation = (
        "Add the container to a workload (a `containers` glob or `labels`) with the flows it needs, or move it "
        "off the policy's networks. Until then podwall denies all its new connections."
    )
    needs = frozenset({"policy"})
    kinds = frozenset({"live"})

    def inventory(self, ctx: AuditContext) -> Iterator[Finding]:
        import dataclasses

        from podwall.policy.semantics import resolve

        # Live containers only: the policy manages what runs on this host. Containers read from files carry a
        # file and line and are not "managed" (podwall audit FILES --policy without --live reports none).
        inv = ctx.inventory
        live = dataclasses.replace(
            inv,
            containers=tuple(c for c in inv.containers if c.loc is None),
            networks=tuple(n for n in inv.networks if n.loc is None),
        )
        res = resolve(ctx.policy.policy, live)
        for name in res.unmatched:
            ep = res.endpoint_of(name)
            nets = ", ".join(ep.networks) if ep else ""
            yield self.finding(
                name,
                f"{name} is on policy network(s) {nets} but in no workload: all its new connections are denied",
                None,
            )
