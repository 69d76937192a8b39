from __future__ import annotations

from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register
from podwall.audit.rules._describe import what
from podwall.model import Container, NetMode
from podwall.sources.compose import PROJECT_LABEL
from podwall.sources.netvalues import PODMAN_DEFAULT_NETWORK

_SHARED = "shared with every container that names no network"


@register
class DefaultNetwork(Rule):
    id = "PW103"
    title = "Relies on a default, shared network"
    severity = Severity.LOW
    threats = (Threat.LATERAL_MOVEMENT,)
    kinds = frozenset({"compose", "quadlet", "shell", "live"})
    remediation = (
        "Name a dedicated network (`--network NAME`, `Network=NAME.network`, compose `networks:`) for each "
        "group of containers that must talk to each other."
    )

    def container(self, c: Container, ctx: AuditContext) -> Iterator[Finding]:
        if c.kind.startswith("kube-"):
            return  # kube YAML does not choose a network: `podman kube play --network` or the .kube unit does
        if c.network_mode is NetMode.DEFAULT:
            yield self.finding(c.name, self._implicit(c), c.loc)
        elif c.network_mode is NetMode.BRIDGE and c.network_names == (PODMAN_DEFAULT_NETWORK,):
            if c.kind == "compose-service":
                msg = f"`network_mode: bridge` puts {what(c)} on Podman's default network `{PODMAN_DEFAULT_NETWORK}`"
            else:
                msg = f"{what(c)} is on Podman's default network `{PODMAN_DEFAULT_NETWORK}`"
            msg += f", {_SHARED}"
            yield self.finding(c.name, msg, c.line_of("network_mode"))

    @staticmethod
    def _implicit(c: Container) -> str:
        if c.kind == "compose-service":
            project = c.labels.get(PROJECT_LABEL, "project")
            return (
                f"{what(c)} has no `networks:`: it joins the project's default network `{project}_default`, "
                "shared by every service of the project that names no network"
            )
        setting = {
            "shell": "no `--network`",
            "shell-pod": "no `--network`",
            "quadlet": "no `Network=`",
            "quadlet-pod": "no `Network=`",
            "quadlet-kube": "no `Network=`",
        }.get(c.kind, "no explicit network")
        return f"{what(c)} has {setting}: it gets Podman's default network `{PODMAN_DEFAULT_NETWORK}`, {_SHARED}"
