"""The inventory model: frozen, typed objects for what matters to network exposure.

Every reader (live Podman, compose, Quadlet, Kubernetes YAML, shell scripts) produces these, and every
consumer (audit rules, policy semantics, the nft compiler, verify, watch) reads only these.

Objects read from a file carry a `Loc` (file, 1-based line). Live objects have `loc=None`.
`Container.locs` maps a field name to the line of its value so that audit rules can point at the offending
value ("network_mode", "privileged", "cap_add:NET_ADMIN", "networks", "pod", ...). A missing entry means
"use the object's own line".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def frozen_map(items: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None) -> Mapping[str, Any]:
    """A read-only mapping, for fields of frozen dataclasses."""
    return MappingProxyType(dict(items or {}))


@dataclass(frozen=True, order=True)
class Loc:
    file: str
    line: int  # 1-based physical line, counted over the whole file
    col: int | None = None


class NetMode(StrEnum):
    BRIDGE = "bridge"  # one or more bridge (or macvlan/ipvlan) networks, see Container.networks
    DEFAULT = "default"  # nothing explicit: Podman's default network (`podman`), or compose's project default
    HOST = "host"
    NONE = "none"
    CONTAINER = "container"  # container:NAME (also compose service:NAME, pod infra sharing)
    NS = "ns"  # ns:/path
    SLIRP = "slirp4netns"
    PASTA = "pasta"
    POD = "pod"  # member of a pod: shares the pod's infra namespace (mode_target = pod name)


UNENFORCEABLE_MODES = frozenset({NetMode.HOST, NetMode.NONE, NetMode.SLIRP, NetMode.PASTA, NetMode.NS})


@dataclass(frozen=True)
class PortMapping:
    container_port: int
    protocol: str = "tcp"  # tcp | udp | sctp
    host_port: int | None = None  # None: Podman picks one
    host_ip: str = ""  # "" = all interfaces; "0.0.0.0"/"::" too
    range: int = 1  # number of consecutive ports (`8000-8010:8000-8010` → 11)
    loc: Loc | None = None

    @property
    def all_interfaces(self) -> bool:
        return self.host_ip.strip("[]") in ("", "0.0.0.0", "::")


@dataclass(frozen=True)
class Attachment:
    """A container's attachment to one network."""

    network: str
    ipv4: tuple[ipaddress.IPv4Address, ...] = ()
    ipv6: tuple[ipaddress.IPv6Address, ...] = ()  # global addresses only; link-local is never listed
    mac: str | None = None
    interface: str | None = None  # name inside the container (eth0)
    aliases: tuple[str, ...] = ()
    gateway4: ipaddress.IPv4Address | None = None
    gateway6: ipaddress.IPv6Address | None = None

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return (*self.ipv4, *self.ipv6)


@dataclass(frozen=True)
class Container:
    name: str
    id: str = ""
    image: str = ""
    labels: Mapping[str, str] = field(default_factory=frozen_map)
    pod: str | None = None
    network_mode: NetMode = NetMode.DEFAULT
    mode_target: str | None = None  # for CONTAINER / NS / POD: what is shared
    networks: tuple[Attachment, ...] = ()  # live: with addresses; files: names only
    ports: tuple[PortMapping, ...] = ()
    cap_add: tuple[str, ...] = ()  # upper-case, without CAP_ prefix
    effective_caps: tuple[str, ...] = ()  # live only: the effective set, same spelling (includes defaults)
    privileged: bool = False
    rootless: bool = False
    running: bool = False
    pid: int | None = None  # live only: State.Pid (0/None when not running)
    sandbox_key: str | None = None  # live only: /run/netns/netns-… when Podman reports it
    infra: bool = False  # a pod's infra container
    kind: str = "container"  # container | compose-service | quadlet | kube-pod | shell
    loc: Loc | None = None
    locs: Mapping[str, Loc] = field(default_factory=frozen_map)

    def line_of(self, key: str) -> Loc | None:
        return self.locs.get(key, self.loc)

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return tuple(a for att in self.networks for a in att.addresses)

    @property
    def network_names(self) -> tuple[str, ...]:
        return tuple(a.network for a in self.networks)


@dataclass(frozen=True)
class Subnet:
    cidr: IPNetwork
    gateway: IPAddress | None = None


@dataclass(frozen=True)
class Network:
    name: str
    driver: str = "bridge"  # bridge | macvlan | ipvlan | ...
    id: str = ""
    subnets: tuple[Subnet, ...] = ()
    internal: bool = False
    isolate: str | None = None  # None, "true" or "strict" (the `isolate` option as given)
    ipv6: bool = False
    dns_enabled: bool = False
    dns_tcp: bool = False  # aardvark-dns also listens on TCP 53 at the gateway (live: read from the host)
    interface: str | None = None  # the host bridge, e.g. podman1
    options: Mapping[str, str] = field(default_factory=frozen_map)
    kind: str = "network"  # network | compose-network | quadlet | shell
    podman_targeted: bool = True  # compose: only True when the file is known to target Podman
    loc: Loc | None = None
    locs: Mapping[str, Loc] = field(default_factory=frozen_map)

    def line_of(self, key: str) -> Loc | None:
        return self.locs.get(key, self.loc)

    @property
    def isolated(self) -> bool:
        """Separated from other networks by netavark (internal, or isolate=strict)."""
        return self.internal or self.isolate == "strict"


@dataclass(frozen=True)
class Inventory:
    containers: tuple[Container, ...] = ()
    networks: tuple[Network, ...] = ()

    def network(self, name: str) -> Network | None:
        for n in self.networks:
            if n.name == name:
                return n
        return None

    def container(self, name: str) -> Container | None:
        for c in self.containers:
            if c.name == name:
                return c
        return None
