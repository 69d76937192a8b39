"""Compile a resolved policy into one nftables table: `table inet podwall`. Pure and deterministic.

Design (docs/policy.md explains it for users):
- Base chains on forward and input at `priority filter - 10`: our drop/reject is final whatever netavark
  accepts, and our accepts never undo netavark's drops.
- Established/related traffic and ICMPv6 ND/MLD pass first. Then a packet is *subject* to the policy when it
  enters or leaves a managed bridge (by interface: unknown and link-local addresses gain nothing) or comes
  from / goes to a managed address (workload containers on unmanaged networks).
- Subject packets are looked up in a fixed number of verdict maps keyed by concatenations
  (`saddr . daddr . l4proto . dport`, with interval flags for CIDRs and port ranges). The per-packet cost
  does not grow with the number of flows. A match accepts; each element carries its own counter and the
  comment `flow N` of the flow that allows it, so per-flow accept counts are sums over elements. There is no
  chain per flow: the nft CLI lists every chain before each command, so chains per flow would make every
  element update cost grow with the number of flows.
- Whatever matches nothing is rejected (`icmpx admin-prohibited`) or dropped; in audit mode it is logged
  and counted instead, and nothing is dropped.
Nothing from a container (names, labels) reaches the text: only addresses (ipaddress objects), validated
interface names, numbers and fixed keywords.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from podwall.model import IPAddress, IPNetwork
from podwall.nft.boxes import Box, disjoint
from podwall.policy.semantics import Grant, GrantKind, Resolved, dns_gateways, grants

TABLE = "podwall"
FLOW_COMMENT = "flow "  # element comment: "flow N" names the flow (its index in the policy) that allows it
FAMILY = "inet"
PRIORITY = "filter - 10"
IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
PROTO_NAMES = {6: "tcp", 17: "udp", 132: "sctp"}

# (kind, lookup keys in packet order) — the map's key fields, per family
MAP_KEYS: dict[GrantKind, tuple[str, ...]] = {
    GrantKind.C2C: ("saddr", "daddr", "proto", "port"),
    GrantKind.C2NET: ("saddr", "daddr", "proto", "port"),
    GrantKind.NET2C: ("saddr", "daddr", "proto", "port"),
    GrantKind.TO_WORLD: ("saddr", "proto", "port"),
    GrantKind.FROM_WORLD: ("daddr", "proto", "port"),
    GrantKind.TO_HOST: ("saddr", "proto", "port"),
}
FORWARD_KINDS = (GrantKind.C2C, GrantKind.C2NET, GrantKind.NET2C, GrantKind.TO_WORLD, GrantKind.FROM_WORLD)


class UnsafeValue(ValueError):
    """A value that must never reach nft text (a hostile interface name, say)."""


def map_name(kind: GrantKind, family: int, ranged: bool = False) -> str:
    """`c2c4` holds elements that are single values in every field (a hash map: cheap to load and update);
    `c2c4r` holds the ones with a CIDR or a range somewhere (an interval map). Both are disjoint."""
    return f"{kind.value}{family}{'r' if ranged else ''}"


def point_indexes() -> dict[str, tuple[int, ...]]:
    """For each map: the key fields that are single addresses (how `elements` groups by endpoint)."""
    out: dict[str, tuple[int, ...]] = {}
    for kind, fields in MAP_KEYS.items():
        ranged_field = {GrantKind.C2NET: "daddr", GrantKind.NET2C: "saddr"}.get(kind)
        idx = tuple(i for i, f in enumerate(fields) if f in ("saddr", "daddr") and f != ranged_field)
        for fam in (4, 6):
            for ranged in (False, True):
                out[map_name(kind, fam, ranged)] = idx
    return out


def ifname(name: str) -> str:
    if not IFNAME_RE.match(name):
        raise UnsafeValue(f"refusing interface name {name!r}")
    return f'"{name}"'


@dataclass(frozen=True, order=True)
class Element:
    """One map element: rendered key parts and the flow that allows it (its comment; counted per element)."""

    key: tuple[str, ...]
    flow: int

    def render(self) -> str:
        return f'{" . ".join(self.key)} comment "{FLOW_COMMENT}{self.flow}" : accept'


@dataclass(frozen=True)
class Ruleset:
    table: str  # the full `table inet podwall { … }` definition
    maps: Mapping[str, tuple[Element, ...]]  # map name → elements
    sets: Mapping[str, tuple[str, ...]]  # named set → rendered elements
    flow_count: int
    mode: str

    @property
    def script(self) -> str:
        """One atomic transaction: create-if-missing, delete, define. A failure changes nothing."""
        return f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n{self.table}"

    @property
    def element_count(self) -> int:
        return sum(len(v) for v in self.maps.values())


# ---- rendering of values ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)
def _addr_range(lo: int, hi: int, family: int) -> str:
    cls = ipaddress.IPv4Address if family == 4 else ipaddress.IPv6Address
    a, b = cls(lo), cls(hi)
    if lo == hi:
        return str(a)
    nets = list(ipaddress.summarize_address_range(a, b))
    if len(nets) == 1:
        return str(nets[0])
    return f"{a}-{b}"


def _proto(lo: int, hi: int) -> str:
    if lo == hi:
        return PROTO_NAMES.get(lo, str(lo))
    return f"{lo}-{hi}"


def _port(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


@functools.lru_cache(maxsize=65536)
def _net_range(n: IPNetwork) -> tuple[int, int]:
    return int(n.network_address), int(n.broadcast_address)


# ---- elements --------------------------------------------------------------------------------------------


def elements(gs: Iterable[Grant]) -> dict[str, list[Element]]:
    """Grants → disjoint map elements, grouped by map. Groups are keyed by the point (single address) fields
    so that an endpoint's elements never depend on another endpoint's (watch updates elements, not rules)."""
    groups: dict[tuple[str, tuple[int, ...]], list[Box]] = defaultdict(list)
    for g in gs:
        name = map_name(g.kind, g.family)  # the group; the element's own map is decided once it is disjoint
        fields = MAP_KEYS[g.kind]
        point: list[int] = []
        axes: list[tuple[int, int]] = []
        for f in fields:
            if f in ("saddr", "daddr"):
                net = g.src if f == "saddr" else g.dst
                assert net is not None
                r = _net_range(net)
                is_point = g.kind is GrantKind.C2C or (
                    (g.kind is GrantKind.C2NET and f == "saddr") or (g.kind is GrantKind.NET2C and f == "daddr")
                ) or g.kind in (GrantKind.TO_WORLD, GrantKind.FROM_WORLD, GrantKind.TO_HOST)
                if is_point:
                    point.append(r[0])
                else:
                    axes.append(r)
            elif f == "proto":
                axes.append(g.protos)
            else:
                axes.append(g.ports)
        groups[(name, tuple(point))].append((tuple(axes), g.flow))

    out: dict[str, list[Element]] = defaultdict(list)
    for (name, point), boxes in sorted(groups.items()):
        family = int(name[-1])
        kind = GrantKind(name[:-1])
        fields = MAP_KEYS[kind]
        for ranges, flow in disjoint(boxes):
            it_point = iter(point)
            it_axes = iter(ranges)
            parts = []
            for f in fields:
                if f in ("saddr", "daddr"):
                    is_range_field = (kind is GrantKind.C2NET and f == "daddr") or (
                        kind is GrantKind.NET2C and f == "saddr"
                    )
                    if is_range_field:
                        lo, hi = next(it_axes)
                        parts.append(_addr_range(lo, hi, family))
                    else:
                        p = next(it_point)
                        parts.append(_addr_range(p, p, family))
                elif f == "proto":
                    parts.append(_proto(*next(it_axes)))
                else:
                    parts.append(_port(*next(it_axes)))
            exact = all(lo == hi for lo, hi in ranges)
            out[map_name(kind, family, ranged=not exact)].append(Element(tuple(parts), flow))
    return out


# ---- the table -------------------------------------------------------------------------------------------


def _map_type(kind: GrantKind, family: int) -> str:
    addr = "ipv4_addr" if family == 4 else "ipv6_addr"
    types = {"saddr": addr, "daddr": addr, "proto": "inet_proto", "port": "inet_service"}
    return " . ".join(types[f] for f in MAP_KEYS[kind])


def _lookup(kind: GrantKind, family: int, ranged: bool = False) -> str:
    ip = "ip" if family == 4 else "ip6"
    expr = {"saddr": f"{ip} saddr", "daddr": f"{ip} daddr", "proto": "meta l4proto", "port": "th dport"}
    key = " . ".join(expr[f] for f in MAP_KEYS[kind])
    not_world = NOT_WORLD4 if family == 4 else NOT_WORLD6
    # the world is neither a Podman bridge nor a Podman subnet, nor a broadcast/multicast/link-local address
    guard = {
        GrantKind.TO_WORLD: f"oifname != @podman_ifaces {ip} daddr != @podman_subnets{family} "
        f"{ip} daddr != {not_world} ",
        GrantKind.FROM_WORLD: f"ct status dnat iifname != @podman_ifaces {ip} saddr != @podman_subnets{family} "
        f"{ip} saddr != {not_world} ",
    }.get(kind, "")
    return f"{guard}{key} vmap @{map_name(kind, family, ranged)}"


def _elements_block(items: list[str], indent: str = "\t\t") -> str:
    if not items:
        return ""
    joined = f",\n{indent}\t     ".join(items)
    return f"{indent}elements = {{ {joined} }}\n"


def _set(name: str, typ: str, items: list[str], flags: str | None = None, extra: str = "") -> str:
    s = f"\tset {name} {{\n\t\ttype {typ}\n"
    if flags:
        s += f"\t\tflags {flags}\n"
    s += extra
    s += _elements_block(items)
    return s + "\t}\n"


def _addr_sort(a: IPAddress) -> tuple[int, int]:
    return (a.version, int(a))


def _addr(a: IPAddress) -> str:
    """Rendered from the integer: an IPv6 scope id (free text) can never reach the nft text."""
    return str(type(a)(int(a)))


def _net(n: IPNetwork) -> str:
    return f"{_addr(n.network_address)}/{n.prefixlen}"


NOT_WORLD4 = "{ 224.0.0.0/4, 255.255.255.255, 169.254.0.0/16 }"
NOT_WORLD6 = "{ ff00::/8, fe80::/10 }"
# ICMPv6 that must pass before any deny so that IPv6 works: router and neighbour solicitation, neighbour
# advertisement (hop limit 255) and MLD (hop limit 1). Router advertisements and redirects from a container
# are never legitimate (a rogue router on the bridge), so they are not in this list.
ND_IN = ND_FWD = "nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert"
MLD = "mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report"


def compile_ruleset(res: Resolved, policy_hash: str = "") -> Ruleset:
    policy = res.policy
    gs = grants(res)
    maps = elements(gs)

    bridges = [n for n in res.inventory.networks if n.driver == "bridge" and n.interface]
    managed = [n for n in res.managed_networks if n.driver == "bridge" and n.interface]
    managed_addrs = sorted(set(res.managed_addresses), key=_addr_sort)
    subnets = sorted(set(res.podman_subnets), key=lambda n: (n.version, int(n.network_address), n.prefixlen))
    dns = dns_gateways(res)
    # anti-spoofing: what may arrive from each managed bridge (its subnets; for IPv6 also link-local and the
    # unspecified address of duplicate address detection)
    origin4 = sorted({(n.interface or "", s.cidr) for n in managed for s in n.subnets if s.cidr.version == 4},
                     key=lambda t: (t[0], int(t[1].network_address)))
    origin6 = sorted({(n.interface or "", s.cidr) for n in managed for s in n.subnets if s.cidr.version == 6},
                     key=lambda t: (t[0], int(t[1].network_address)))

    sets: dict[str, list[str]] = {
        "managed_ifaces": [ifname(i) for i in sorted({n.interface or "" for n in managed})],
        "podman_ifaces": [ifname(i) for i in sorted({n.interface or "" for n in bridges})],
        "managed4": [_addr(a) for a in managed_addrs if a.version == 4],
        "managed6": [_addr(a) for a in managed_addrs if a.version == 6],
        "podman_subnets4": [_net(n) for n in subnets if n.version == 4],
        "podman_subnets6": [_net(n) for n in subnets if n.version == 6],
        "origin4": [f"{ifname(i)} . {_net(c)}" for i, c in origin4],
        "origin6": [f"{ifname(i)} . {x}" for i in sorted({n.interface or "" for n in managed})
                    for x in ("fe80::/10", "::/128")] + [f"{ifname(i)} . {_net(c)}" for i, c in origin6],
        "dns4": [f"{_addr(d.gateway)} . {ifname(d.interface)}" for d in dns if d.gateway.version == 4],
        "dns6": [f"{_addr(d.gateway)} . {ifname(d.interface)}" for d in dns if d.gateway.version == 6],
        "dnstcp4": [f"{_addr(d.gateway)} . {ifname(d.interface)}" for d in dns if d.gateway.version == 4 and d.tcp],
        "dnstcp6": [f"{_addr(d.gateway)} . {ifname(d.interface)}" for d in dns if d.gateway.version == 6 and d.tcp],
    }
    sets["origin6"] = sorted(set(sets["origin6"]))

    comment = f"podwall sha256={policy_hash}" if policy_hash else "podwall"
    t = [f"table {FAMILY} {TABLE} {{\n", f'\tcomment "{comment}"\n']
    t.append(_set("managed_ifaces", "ifname", sets["managed_ifaces"]))
    t.append(_set("podman_ifaces", "ifname", sets["podman_ifaces"]))
    for fam, typ in ((4, "ipv4_addr"), (6, "ipv6_addr")):
        t.append(_set(f"managed{fam}", typ, sets[f"managed{fam}"]))
        t.append(_set(f"podman_subnets{fam}", typ, sets[f"podman_subnets{fam}"], "interval"))
        t.append(_set(f"origin{fam}", f"ifname . {typ}", sets[f"origin{fam}"], "interval"))
        t.append(_set(f"dns{fam}", f"{typ} . ifname", sets[f"dns{fam}"]))
        t.append(_set(f"dnstcp{fam}", f"{typ} . ifname", sets[f"dnstcp{fam}"]))
        t.append(_set(f"denied{fam}", f"{typ} . {typ}", [], "dynamic,timeout",
                      "\t\ttimeout 1h\n\t\tsize 65535\n\t\tcounter\n"))
    for kind in GrantKind:
        for fam in (4, 6):
            for ranged in (False, True):
                name = map_name(kind, fam, ranged)
                items = [e.render() for e in maps.get(name, [])]
                flags = "\t\tflags interval\n" if ranged else ""
                t.append(
                    f"\tmap {name} {{\n\t\ttype {_map_type(kind, fam)} : verdict\n{flags}\t\tcounter\n"
                    + _elements_block(items)
                    + "\t}\n"
                )

    # A TCP packet that is "new" but no SYN is a mid-stream pickup (nf_conntrack_tcp_loose): typically a
    # connection whose conntrack entry revocation deleted. It must not be re-admitted, in either direction.
    midstream = "\t\tmeta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn goto deny\n"

    fwd = ["\tchain policy_fwd {\n", midstream]
    for fam in (4, 6):
        for kind in FORWARD_KINDS:
            fwd.append(f"\t\t{_lookup(kind, fam)}\n\t\t{_lookup(kind, fam, ranged=True)}\n")
    fwd.append("\t\tgoto deny\n\t}\n")
    t.extend(fwd)

    pin = ["\tchain policy_in {\n", midstream]
    for fam, ip in ((4, "ip"), (6, "ip6")):
        # aardvark-dns of the network the packet came from, on the original port (netavark may DNAT 53)
        pin.append(f"\t\tmeta l4proto udp {ip} daddr . iifname @dns{fam} ct original proto-dst 53 accept\n")
        pin.append(f"\t\tmeta l4proto tcp {ip} daddr . iifname @dnstcp{fam} ct original proto-dst 53 accept\n")
    for fam in (4, 6):
        pin.append(f"\t\t{_lookup(GrantKind.TO_HOST, fam)}\n\t\t{_lookup(GrantKind.TO_HOST, fam, ranged=True)}\n")
    pin.append("\t\tgoto deny\n\t}\n")
    t.extend(pin)

    deny = ["\tchain deny {\n"]
    deny.append("\t\tadd @denied4 { ip saddr . ip daddr }\n")
    deny.append("\t\tadd @denied6 { ip6 saddr . ip6 daddr }\n")
    if policy.mode == "audit":
        deny.append('\t\tcounter limit rate 50/second burst 100 packets log prefix "podwall-audit: " level info\n')
    elif policy.deny == "drop":
        deny.append("\t\tcounter drop\n")
    else:
        # a mid-stream TCP packet of a revoked connection: a reset aborts it at both ends at once
        deny.append("\t\tmeta l4proto tcp tcp flags & (fin | syn | rst | ack) != syn counter reject with tcp reset\n")
        deny.append("\t\tcounter reject with icmpx admin-prohibited\n")
    deny.append("\t}\n")
    t.extend(deny)

    spoof = ["\tchain spoofed {\n"]
    if policy.mode == "audit":
        spoof.append('\t\tcounter limit rate 50/second burst 100 packets log prefix "podwall-audit-spoofed: " level info\n')
    else:
        spoof.append("\t\tcounter drop\n")
    t.extend([*spoof, "\t}\n"])

    def base(hook: str, target: str, by_oif: bool, nd: str) -> str:
        s = f"\tchain {hook} {{\n\t\ttype filter hook {hook} priority {PRIORITY}; policy accept;\n"
        # a managed container may only send from its own network's addresses (checked before conntrack: a
        # spoofed packet must not ride on someone else's established connection either)
        s += "\t\tiifname @managed_ifaces meta nfproto ipv4 iifname . ip saddr != @origin4 goto spoofed\n"
        s += "\t\tiifname @managed_ifaces meta nfproto ipv6 iifname . ip6 saddr != @origin6 goto spoofed\n"
        s += "\t\tct state established,related accept\n"
        s += f"\t\ticmpv6 type {{ {nd} }} ip6 hoplimit 255 accept\n"
        s += f"\t\ticmpv6 type {{ {MLD} }} ip6 hoplimit 1 accept\n"
        s += f"\t\tiifname @managed_ifaces goto {target}\n"
        if by_oif:
            s += f"\t\toifname @managed_ifaces goto {target}\n"
        s += f"\t\tip saddr @managed4 goto {target}\n\t\tip6 saddr @managed6 goto {target}\n"
        if by_oif:
            s += f"\t\tip daddr @managed4 goto {target}\n\t\tip6 daddr @managed6 goto {target}\n"
        return s + "\t}\n"

    t.append(base("forward", "policy_fwd", True, ND_FWD))
    t.append(base("input", "policy_in", False, ND_IN))
    t.append("}\n")
    return Ruleset(
        table="".join(t),
        maps={k: tuple(v) for k, v in maps.items()},
        sets={k: tuple(v) for k, v in sets.items()},
        flow_count=len(policy.flows),
        mode=policy.mode,
    )
