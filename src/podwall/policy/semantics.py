"""What a policy means for an inventory: the one source of truth.

`resolve(policy, inventory)` decides who is managed and groups containers by network namespace;
`grants(resolved)` expands flows into address-level grants. The nft compiler turns grants into set/map
elements, and `decide()` answers "would a new connection be allowed?" from the very same grants, so the
expected matrix of `verify` and the compiled ruleset cannot disagree. Pure: no I/O.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from podwall.model import UNENFORCEABLE_MODES, Container, Inventory, IPAddress, IPNetwork, NetMode, Network
from podwall.policy.schema import CidrPeer, FlowSpec, Policy

ALL_PROTOS = (0, 255)
ALL_PORTS = (0, 65535)
FILTERABLE_DRIVERS = frozenset({"bridge"})


class GrantKind(StrEnum):
    C2C = "c2c"  # container address → container address
    C2NET = "c2net"  # container address → CIDR
    NET2C = "net2c"  # CIDR → container address
    TO_WORLD = "to_world"  # container address → anything neither local nor in a Podman subnet
    FROM_WORLD = "from_world"  # published-port ingress (after DNAT) → container address
    TO_HOST = "to_host"  # container address → local delivery on this host


@dataclass(frozen=True, order=True)
class Grant:
    """One allowed box. `src`/`dst` are networks (a single address is a /32 or /128); None: not a key."""

    kind: GrantKind
    family: int
    src: IPNetwork | None
    dst: IPNetwork | None
    protos: tuple[int, int]
    ports: tuple[int, int]
    flow: int  # index into policy.flows: which flow allows it


@dataclass(frozen=True)
class Endpoint:
    """A network namespace with the union of the rights of every container in it."""

    key: str  # the container that owns the namespace (a pod's infra, a `container:` target, itself)
    containers: tuple[str, ...]
    workloads: frozenset[str]
    managed: bool
    enforceable: bool
    reason: str | None  # why it cannot be enforced (host network, rootless, …)
    v4: tuple[ipaddress.IPv4Address, ...]
    v6: tuple[ipaddress.IPv6Address, ...]
    networks: tuple[str, ...]
    netns: str | None = None
    display: str = ""  # the container to show for this namespace (not a pod's infra container)

    @property
    def addresses(self) -> tuple[IPAddress, ...]:
        return (*self.v4, *self.v6)

    def family(self, version: int) -> tuple[IPAddress, ...]:
        return self.v4 if version == 4 else self.v6

    @property
    def label(self) -> str:
        return "+".join(sorted(self.workloads)) or ("unmatched" if self.managed else "unmanaged")


@dataclass(frozen=True)
class Resolved:
    policy: Policy
    inventory: Inventory
    endpoints: tuple[Endpoint, ...]
    managed_networks: tuple[Network, ...]  # policy networks that exist
    missing_networks: tuple[str, ...]  # policy networks that do not exist yet
    members: Mapping[str, tuple[str, ...]]  # workload → container names (running or not)
    unmatched: tuple[str, ...]  # managed containers in no workload (PW108)
    unenforceable: tuple[tuple[str, str], ...]  # (container, why)
    warnings: tuple[str, ...]
    podman_subnets: tuple[IPNetwork, ...] = field(default=())

    def endpoint_of(self, container: str) -> Endpoint | None:
        for ep in self.endpoints:
            if container in ep.containers:
                return ep
        return None

    @property
    def managed_addresses(self) -> tuple[IPAddress, ...]:
        return tuple(a for ep in self.endpoints if ep.managed and ep.enforceable for a in ep.addresses)


def workloads_of(c: Container, policy: Policy) -> frozenset[str]:
    out = set()
    for name, wl in policy.workloads.items():
        by_name = any(fnmatch.fnmatchcase(c.name, g) for g in wl.containers)
        by_labels = bool(wl.labels) and all(c.labels.get(k) == v for k, v in wl.labels.items())
        if by_name or by_labels:
            out.add(name)
    return frozenset(out)


def _owner(c: Container, by_name: Mapping[str, Container], by_id: Mapping[str, Container],
           infra_of_pod: Mapping[str, Container]) -> Container:
    """Follow namespace sharing (container:X, pod membership) to the container that owns the namespace."""
    seen = set()
    cur = c
    while cur.name not in seen:
        seen.add(cur.name)
        nxt: Container | None = None
        if cur.network_mode is NetMode.CONTAINER and cur.mode_target:
            t = cur.mode_target
            nxt = by_name.get(t) or by_id.get(t) or next(
                (v for k, v in by_id.items() if len(t) >= 12 and k.startswith(t)), None
            )
        elif cur.network_mode is NetMode.POD or (cur.pod and not cur.infra and not cur.networks):
            nxt = infra_of_pod.get(cur.pod or cur.mode_target or "")
        if nxt is None:
            return cur
        cur = nxt
    return cur


def _unenforceable_reason(owner: Container, inv: Inventory) -> str | None:
    if owner.rootless:
        return "rootless Podman: its networks live in the rootless network namespace"
    if owner.network_mode in UNENFORCEABLE_MODES:
        return {
            NetMode.HOST: "host network: its traffic is the host's own",
            NetMode.NONE: "no network",
            NetMode.SLIRP: "slirp4netns: its traffic is host output",
            NetMode.PASTA: "pasta: its traffic is host output",
            NetMode.NS: "joins a foreign network namespace",
        }[owner.network_mode]
    for att in owner.networks:
        net = inv.network(att.network)
        if net is not None and net.driver not in FILTERABLE_DRIVERS:
            return f"{net.driver} network {net.name!r}: the host firewall cannot filter it"
    return None


def _netns(c: Container) -> str | None:
    if c.sandbox_key:
        return c.sandbox_key
    if c.pid:
        return f"/proc/{c.pid}/ns/net"
    return None


def resolve(policy: Policy, inv: Inventory) -> Resolved:
    by_name = {c.name: c for c in inv.containers}
    by_id = {c.id: c for c in inv.containers if c.id}
    infra_of_pod = {c.pod: c for c in inv.containers if c.infra and c.pod}
    policy_nets = set(policy.networks)

    groups: dict[str, list[Container]] = defaultdict(list)
    owners: dict[str, Container] = {}
    for c in inv.containers:
        o = _owner(c, by_name, by_id, infra_of_pod)
        groups[o.name].append(c)
        owners[o.name] = o

    members: dict[str, list[str]] = {w: [] for w in policy.workloads}
    endpoints = []
    unmatched: list[str] = []
    unenforceable: list[tuple[str, str]] = []
    warnings: list[str] = []
    for key in sorted(groups):
        owner = owners[key]
        cs = sorted(groups[key], key=lambda c: c.name)
        wls: set[str] = set()
        for c in cs:
            w = workloads_of(c, policy)
            for name in w:
                members[name].append(c.name)
            wls |= w
        nets = tuple(a.network for a in owner.networks)
        managed = bool(wls) or any(n in policy_nets for n in nets)
        reason = _unenforceable_reason(owner, inv)
        if managed:
            if not wls:  # containers sharing a namespace with a workload member get its rights
                unmatched.extend(c.name for c in cs if not c.infra)
            if reason:
                unenforceable.extend((c.name, reason) for c in cs if not c.infra)
            elif wls and not any(n in policy_nets for n in nets) and owner.running:
                warnings.append(
                    f"{key}: workload {'+'.join(sorted(wls))} on unmanaged network(s) {', '.join(nets) or '-'}: "
                    "enforced by address only (IPv6 link-local on that bridge is not covered)"
                )
        v4 = tuple(sorted({a for att in owner.networks for a in att.ipv4}))
        v6 = tuple(sorted({a for att in owner.networks for a in att.ipv6}))
        endpoints.append(
            Endpoint(
                key=key,
                containers=tuple(c.name for c in cs),
                workloads=frozenset(wls),
                managed=managed,
                enforceable=reason is None,
                reason=reason,
                v4=v4,
                v6=v6,
                networks=nets,
                netns=_netns(owner),
                display=next((c.name for c in cs if not c.infra), key),
            )
        )

    managed_networks = tuple(n for n in inv.networks if n.name in policy_nets)
    missing = tuple(sorted(policy_nets - {n.name for n in managed_networks}))
    for n in managed_networks:
        if not n.dns_enabled:
            warnings.append(
                f"network {n.name}: DNS is disabled, so containers resolve through the host's upstream "
                "servers: that is egress to `world` and needs a flow"
            )
    subnets = tuple(s.cidr for n in inv.networks for s in n.subnets)
    return Resolved(
        policy=policy,
        inventory=inv,
        endpoints=tuple(endpoints),
        managed_networks=managed_networks,
        missing_networks=missing,
        members={k: tuple(sorted(v)) for k, v in members.items()},
        unmatched=tuple(sorted(set(unmatched))),
        unenforceable=tuple(sorted(set(unenforceable))),
        warnings=tuple(warnings),
        podman_subnets=subnets,
    )


def port_boxes(flow: FlowSpec) -> tuple[tuple[tuple[int, int], tuple[int, int]], ...]:
    ranges = flow.port_ranges
    if ranges is None:
        return ((ALL_PROTOS, ALL_PORTS),)
    return tuple(((r.proto_number, r.proto_number), (r.lo, r.hi)) for r in ranges)


@functools.lru_cache(maxsize=65536)
def _host_net(a: IPAddress) -> IPNetwork:
    return ipaddress.ip_network(a)


def _eps(res: Resolved, workload: str) -> list[Endpoint]:
    return [ep for ep in res.endpoints if workload in ep.workloads and ep.enforceable and ep.addresses]


def flow_grants(res: Resolved, index: int, flow: FlowSpec,
                only: Iterable[Endpoint] | None = None) -> list[Grant]:
    """Grants of one flow. With `only`, just those touching these endpoints (for incremental updates)."""
    wl = res.policy.workloads
    boxes = port_boxes(flow)
    src, dst = flow.from_, flow.to
    keep = None if only is None else {ep.key for ep in only}
    out: list[Grant] = []

    def want(*eps: Endpoint) -> bool:
        return keep is None or any(ep.key in keep for ep in eps)

    def add(kind: GrantKind, fam: int, s: IPNetwork | None, d: IPNetwork | None) -> None:
        for protos, ports in boxes:
            out.append(Grant(kind, fam, s, d, protos, ports, index))

    if isinstance(src, str) and src in wl:
        # With `only`, visit just the pairs that touch it: watch updates one namespace among hundreds.
        d_all = _eps(res, dst) if isinstance(dst, str) and dst in wl else []
        d_kept = d_all if keep is None else [ep for ep in d_all if ep.key in keep]
        for s_ep in _eps(res, src):
            if isinstance(dst, str) and dst in wl:
                for d_ep in d_all if want(s_ep) else d_kept:
                    if d_ep.key == s_ep.key:
                        continue  # a namespace reaches itself over loopback, never through the host
                    for fam in (4, 6):
                        for sa in s_ep.family(fam):
                            for da in d_ep.family(fam):
                                add(GrantKind.C2C, fam, _host_net(sa), _host_net(da))
            elif not want(s_ep):
                continue
            elif isinstance(dst, CidrPeer):
                net = dst.network
                for sa in s_ep.family(net.version):
                    add(GrantKind.C2NET, net.version, _host_net(sa), net)
            elif dst in ("world", "host"):
                kind = GrantKind.TO_WORLD if dst == "world" else GrantKind.TO_HOST
                for sa in s_ep.addresses:
                    add(kind, sa.version, _host_net(sa), None)
    elif isinstance(dst, str) and dst in wl:
        for d_ep in _eps(res, dst):
            if not want(d_ep):
                continue
            if isinstance(src, CidrPeer):
                net = src.network
                for da in d_ep.family(net.version):
                    add(GrantKind.NET2C, net.version, net, _host_net(da))
            elif src == "world":
                for da in d_ep.addresses:
                    add(GrantKind.FROM_WORLD, da.version, None, _host_net(da))
    return out


def grants(res: Resolved, only: Iterable[Endpoint] | None = None) -> list[Grant]:
    only_l = None if only is None else list(only)
    out: list[Grant] = []
    for i, flow in enumerate(res.policy.flows):
        out.extend(flow_grants(res, i, flow, only_l))
    return out


# ---- decisions ------------------------------------------------------------------------------------------


def _covers(g: Grant, src: IPAddress | None, dst: IPAddress | None, proto: int, port: int) -> bool:
    if not (g.protos[0] <= proto <= g.protos[1] and g.ports[0] <= port <= g.ports[1]):
        return False
    if g.src is not None and (src is None or src not in g.src):
        return False
    if g.dst is not None and (dst is None or dst not in g.dst):
        return False
    return True


def in_podman_subnet(res: Resolved, a: IPAddress) -> bool:
    return any(a.version == n.version and a in n for n in res.podman_subnets)


def allowed_by_grants(gs: Iterable[Grant], kinds: Iterable[GrantKind], src: IPAddress | None,
                      dst: IPAddress | None, proto: int, port: int) -> Grant | None:
    ks = set(kinds)
    best = None
    for g in gs:
        if g.kind in ks and _covers(g, src, dst, proto, port) and (best is None or g.flow < best.flow):
            best = g
    return best


def forward_kinds(res: Resolved, src: IPAddress, dst: IPAddress, dnat: bool = False) -> tuple[GrantKind, ...]:
    """Which maps a forwarded packet is looked up in, in the order the compiled chain does."""
    kinds = [GrantKind.C2C, GrantKind.C2NET, GrantKind.NET2C]
    if is_world(res, dst):
        kinds.append(GrantKind.TO_WORLD)
    if dnat and is_world(res, src):
        kinds.append(GrantKind.FROM_WORLD)
    return tuple(kinds)


def topology_block(res: Resolved, src_net: str | None, dst_net: str | None) -> str | None:
    """netavark's own isolation (a drop in its tables is final, whatever podwall allows)."""
    inv = res.inventory
    if src_net == dst_net:
        return None
    a = inv.network(src_net) if src_net else None
    b = inv.network(dst_net) if dst_net else None
    for n in (a, b):
        if n is not None and n.internal:
            return f"netavark: {n.name} is internal"
    for n in (a, b):
        if n is not None and n.isolate == "strict":
            return f"netavark: {n.name} is isolate=strict"
    if a is not None and b is not None and a.isolate == "true" and b.isolate == "true":
        return f"netavark: {a.name} and {b.name} are both isolated"
    return None


@dataclass(frozen=True, order=True)
class DnsGateway:
    gateway: IPAddress
    interface: str
    subnet: IPNetwork
    tcp: bool  # aardvark-dns listens on TCP there too (1.4 does not: then TCP 53 is not an exception)


def dns_gateways(res: Resolved) -> list[DnsGateway]:
    """aardvark-dns of every DNS-enabled bridge that a managed, enforced container is attached to: always
    reachable from that network (the ruleset keys it by gateway and bridge, so only from that network)."""
    attached = {n for ep in res.endpoints if ep.managed and ep.enforceable for n in ep.networks}
    attached |= {n.name for n in res.managed_networks}
    out = []
    for n in res.inventory.networks:
        if n.name in attached and n.dns_enabled and n.interface and n.driver in FILTERABLE_DRIVERS:
            for s in n.subnets:
                if s.gateway is not None:
                    out.append(DnsGateway(s.gateway, n.interface, s.cidr, n.dns_tcp))
    return sorted(set(out), key=lambda d: (d.gateway.version, int(d.gateway), d.interface))


# Never "the world": broadcast, multicast and link-local destinations stay on the link they are sent to
# (br_netfilter shows every flooded copy to the forward hook), so they are neighbours, not the world.
NOT_WORLD = tuple(
    ipaddress.ip_network(n)
    for n in ("224.0.0.0/4", "255.255.255.255/32", "169.254.0.0/16", "ff00::/8", "fe80::/10")
)


def is_world(res: Resolved, a: IPAddress) -> bool:
    return not in_podman_subnet(res, a) and not any(a.version == n.version and a in n for n in NOT_WORLD)


class Decider:
    """Answers "is a new connection allowed?" from the grants, indexed by their point addresses.

    It mirrors the compiled chains: who is subject to the policy, which maps are looked up, in what order.
    `verify` computes its expected matrix with it and `apply`/`watch` use it to find the established
    connections a new ruleset no longer allows.
    """

    def __init__(self, res: Resolved, gs: Iterable[Grant] | None = None) -> None:
        self.res = res
        self.managed = set(res.managed_addresses)
        self.managed_subnets = [s.cidr for n in res.managed_networks for s in n.subnets]
        self.dns = dns_gateways(res)
        self.index: dict[tuple[GrantKind, IPAddress | None, IPAddress | None], list[Grant]] = defaultdict(list)
        for g in grants(res) if gs is None else gs:
            s = g.src.network_address if g.src is not None and g.kind in _SRC_POINT else None
            d = g.dst.network_address if g.dst is not None and g.kind in _DST_POINT else None
            self.index[(g.kind, s, d)].append(g)

    def is_managed(self, a: IPAddress) -> bool:
        """Subject to the policy by address. Link-local addresses count: on managed bridges they are denied
        by interface, and an address alone cannot tell which bridge (conservative for revocation)."""
        if a.version == 6 and a.is_link_local:
            return True
        return a in self.managed or any(a.version == n.version and a in n for n in self.managed_subnets)

    def _lookup(self, kind: GrantKind, src: IPAddress, dst: IPAddress, proto: int, port: int) -> Grant | None:
        s = src if kind in _SRC_POINT else None
        d = dst if kind in _DST_POINT else None
        return allowed_by_grants(self.index.get((kind, s, d), ()), (kind,), src, dst, proto, port)

    def forward(self, src: IPAddress, dst: IPAddress, proto: int, port: int,
                dnat: bool = False) -> tuple[bool, Grant | None]:
        """(subject, grant) for a forwarded new connection; not subject means the policy does not apply."""
        if not (self.is_managed(src) or self.is_managed(dst)):
            return False, None
        for kind in forward_kinds(self.res, src, dst, dnat):
            g = self._lookup(kind, src, dst, proto, port)
            if g is not None:
                return True, g
        return True, None

    def to_host(self, src: IPAddress, dst: IPAddress, proto: int, port: int) -> tuple[bool, Grant | None, bool]:
        """(subject, grant, dns) for a container → host connection."""
        if not self.is_managed(src):
            return False, None, False
        if port == 53 and proto in (6, 17) and any(
            d.gateway == dst and src.version == d.subnet.version and src in d.subnet and (proto == 17 or d.tcp)
            for d in self.dns
        ):
            return True, None, True
        return True, self._lookup(GrantKind.TO_HOST, src, dst, proto, port), False


_SRC_POINT = frozenset({GrantKind.C2C, GrantKind.C2NET, GrantKind.TO_WORLD, GrantKind.TO_HOST})
_DST_POINT = frozenset({GrantKind.C2C, GrantKind.NET2C, GrantKind.FROM_WORLD})


# ---- what a flow means on this host (plan) ----------------------------------------------------------------


@dataclass(frozen=True)
class Ingress:
    """One published port that a `from: world` flow opens: host ip:port → container:port."""

    flow: int
    workload: str
    container: str
    host_ip: str
    host_port: int | None
    container_port: int
    protocol: str


def world_ingress(res: Resolved) -> tuple[list[Ingress], list[tuple[int, str]]]:
    """The published ports behind each `from: world` flow, and (flow, warning) for flows none maps to."""
    found: list[Ingress] = []
    unmatched: list[tuple[int, str]] = []
    by_name = {c.name: c for c in res.inventory.containers}
    for i, flow in enumerate(res.policy.flows):
        if flow.from_ != "world" or not isinstance(flow.to, str):
            continue
        ranges = flow.port_ranges
        hits = []
        for ep in res.endpoints:
            if flow.to not in ep.workloads:
                continue
            for name in ep.containers:
                c = by_name.get(name)
                for pm in c.ports if c else ():
                    for k in range(pm.range):
                        port = pm.container_port + k
                        if ranges is None or any(r.proto == pm.protocol and r.lo <= port <= r.hi for r in ranges):
                            hp = None if pm.host_port is None else pm.host_port + k
                            hits.append(Ingress(i, flow.to, name, pm.host_ip or "*", hp, port, pm.protocol))
        found.extend(hits)
        if not hits and res.members.get(flow.to):
            unmatched.append((i, f"no container of {flow.to} publishes a port this flow names: nothing can "
                                 "reach it from the world"))
    return found, unmatched


def impossible_flows(res: Resolved) -> list[tuple[int, str]]:
    """(flow, why) for flows between workloads that netavark's own isolation makes impossible everywhere."""
    out = []
    wl = res.policy.workloads
    for i, flow in enumerate(res.policy.flows):
        src = [ep for ep in res.endpoints if isinstance(flow.from_, str) and flow.from_ in ep.workloads
               and ep.enforceable and ep.networks]
        if not src:
            continue
        if isinstance(flow.to, str) and flow.to in wl:
            dst = [ep for ep in res.endpoints if flow.to in ep.workloads and ep.enforceable and ep.networks]
            pairs = [(s, d) for s in src for d in dst if s.key != d.key]
            if not pairs:
                continue
            reasons = set()
            possible = False
            for s, d in pairs:
                if set(s.networks) & set(d.networks):
                    possible = True
                    break
                blocks = [topology_block(res, a, b) for a in s.networks for b in d.networks]
                if any(b is None for b in blocks):
                    possible = True
                    break
                reasons.update(b for b in blocks if b)
            if not possible:
                out.append((i, f"{flow.from_} → {flow.to} cannot happen here: {'; '.join(sorted(reasons))}"))
        elif flow.to == "world":
            nets = [res.inventory.network(n) for s in src for n in s.networks]
            if nets and all(n is not None and n.internal for n in nets):
                out.append((i, f"{flow.from_} → world cannot happen here: its networks are all internal"))
    return out
