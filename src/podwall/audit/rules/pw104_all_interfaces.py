from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.audit.rules._describe import what
from podwall.model import Container, NetMode, PortMapping
from podwall.sources.ports import UNKNOWN_PORT


def describe_port(p: PortMapping) -> str:
    if p.container_port == UNKNOWN_PORT:
        return f"container ports not known statically ({p.protocol})"
    last = p.range - 1
    cont = f"{p.container_port}" + (f"-{p.container_port + last}" if last else "")
    host = "a random host port" if p.host_port is None else f"{p.host_port}" + (f"-{p.host_port + last}" if last else "")
    return f"{host} → {cont}/{p.protocol}"


@register
class PublishedOnAllInterfaces(Rule):
    id = "PW104"
    title = "Port published on all interfaces"
    severity = Severity.MEDIUM
    threats = (Threat.HOST_EXPOSURE,)
    remediation = (
        "Bind the published port to the address that needs it, e.g. `127.0.0.1:8080:80` for local access, or "
        "do not publish it and reach the service over a container network."
    )

    def container(self, c: Container, ctx: AuditContext) -> Iterator[Finding]:
        if c.network_mode is NetMode.HOST:
            return  # published ports are ignored in the host namespace; PW101 covers it
        for p in c.ports:
            if not p.all_interfaces:
                continue
            bind = f"`{p.host_ip}`" if p.host_ip else "no host IP"
            yield self.finding(
                c.name,
                f"{what(c)} publishes {describe_port(p)} on all host interfaces ({bind}): reachable from every "
                "network the host is on",
                p.loc or c.loc,
            )
