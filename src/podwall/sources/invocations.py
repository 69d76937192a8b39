"""Turn parsed podman options into model objects (shared by shell scripts and Quadlet `PodmanArgs=`)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from podwall.errors import InputProblem
from podwall.model import Loc, Network, PortMapping, Subnet, frozen_map
from podwall.sources.netvalues import NetAccumulator, normalise_cap
from podwall.sources.podman_args import Opt, flag_value
from podwall.sources.ports import UNKNOWN_PORT, PortSpecError, parse_port_spec


@dataclass
class ContainerDraft:
    """A container (or pod infra) being assembled from several option sources."""

    net: NetAccumulator = field(default_factory=NetAccumulator)
    ports: list[PortMapping] = field(default_factory=list)
    caps: list[str] = field(default_factory=list)
    privileged: bool = False
    locs: dict[str, Loc] = field(default_factory=dict)
    pod: str | None = None

    def add_port(self, spec: str, loc: Loc, problems: list[InputProblem]) -> None:
        try:
            self.ports.append(parse_port_spec(spec, loc))
        except PortSpecError as exc:
            problems.append(InputProblem(loc.file, loc.line, None, f"invalid port mapping: {exc}"))

    def add_caps(self, value: str, loc: Loc, sep: str = ",") -> None:
        for raw in value.replace(sep, " ").split():
            cap = normalise_cap(raw)
            if cap and cap not in self.caps:
                self.caps.append(cap)
                self.locs[f"cap_add:{cap}"] = loc

    def set_privileged(self, on: bool, loc: Loc) -> None:
        self.privileged = on
        if on:
            self.locs["privileged"] = loc
        else:
            self.locs.pop("privileged", None)

    def set_pod(self, pod: str, loc: Loc) -> None:
        self.pod = pod
        self.net.set_pod(pod, loc)

    def apply_container_opts(
        self,
        opts: Iterable[Opt],
        file: str,
        problems: list[InputProblem],
        resolve: Callable[[str], str] = lambda n: n,
        resolve_pod: Callable[[str], str] = lambda n: n,
    ) -> None:
        for o in opts:
            loc = Loc(file, o.line)
            value = o.value or ""
            if o.name == "network":
                self.net.add(value, loc, resolve)
            elif o.name == "publish":
                self.add_port(value, loc, problems)
            elif o.name == "publish-all" and flag_value(o):
                self.ports.append(PortMapping(container_port=UNKNOWN_PORT, loc=loc))
            elif o.name == "cap-add":
                self.add_caps(value, loc)
            elif o.name == "privileged":
                self.set_privileged(flag_value(o), loc)
            elif o.name == "pod" and value:
                self.set_pod(resolve_pod(value.removeprefix("new:")), loc)

    def model_fields(self) -> dict[str, object]:
        locs = {**self.net.locs, **self.locs}
        return {
            "pod": self.pod,
            "network_mode": self.net.mode,
            "mode_target": self.net.target,
            "networks": self.net.attachments,
            "ports": tuple(self.ports),
            "cap_add": tuple(self.caps),
            "privileged": self.privileged,
            "locs": frozen_map(locs),
        }


@dataclass
class NetworkDraft:
    driver: str = "bridge"
    internal: bool = False
    isolate: str | None = None
    ipv6: bool = False
    dns_enabled: bool = True
    options: dict[str, str] = field(default_factory=dict)
    subnets: list[Subnet] = field(default_factory=list)
    locs: dict[str, Loc] = field(default_factory=dict)

    def add_option(self, kv: str, loc: Loc) -> None:
        for item in kv.split(","):
            key, eq, value = item.strip().partition("=")
            if not key:
                continue
            value = value.strip() if eq else "true"
            self.options[key.strip()] = value
            if key.strip() == "isolate":
                # Podman takes isolate=true|strict (and false); anything else it rejects: keep it as given.
                self.isolate = None if value.lower() in ("false", "0", "no") else value.lower()
                self.locs["isolate"] = loc

    def add_subnet(self, value: str) -> None:
        try:
            self.subnets.append(Subnet(cidr=ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            pass  # a variable or a typo: the subnet does not change any finding

    def apply_network_opts(self, opts: Iterable[Opt], file: str) -> None:
        for o in opts:
            loc = Loc(file, o.line)
            value = o.value or ""
            if o.name == "driver" and value:
                self.driver = value.strip().lower()
                self.locs["driver"] = loc
            elif o.name == "internal":
                self.internal = flag_value(o)
                self.locs["internal"] = loc
            elif o.name == "opt":
                self.add_option(value, loc)
            elif o.name == "subnet":
                self.add_subnet(value)
            elif o.name == "ipv6":
                self.ipv6 = flag_value(o)
            elif o.name == "disable-dns":
                self.dns_enabled = not flag_value(o)

    def build(self, name: str, kind: str, loc: Loc) -> Network:
        return Network(
            name=name,
            driver=self.driver,
            subnets=tuple(self.subnets),
            internal=self.internal,
            isolate=self.isolate,
            ipv6=self.ipv6 or any(s.cidr.version == 6 for s in self.subnets),
            dns_enabled=self.dns_enabled,
            options=frozen_map(self.options),
            kind=kind,
            podman_targeted=True,
            loc=loc,
            locs=frozen_map(self.locs),
        )

