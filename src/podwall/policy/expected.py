"""The expected connectivity matrix: which cells to probe and what each should show. Pure.

Cells come from the same grants as the compiled ruleset (through `Decider`), plus netavark's own isolation,
which podwall cannot undo. Port choice per (source, destination) pair:
- every port a flow between their workloads names (both ends of a range): expected allow;
- the port just after each of those, unless allowed too: expected block (the flow does not name it);
- a small sample (`sample_ports`), whatever the policy says.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from podwall.cells import Cell, Verdict
from podwall.model import IPAddress
from podwall.policy.schema import PROTO_NUMBERS, CidrPeer, PortRange
from podwall.policy.semantics import Decider, Endpoint, Resolved, topology_block

DEFAULT_SAMPLE = (PortRange("tcp", 22, 22), PortRange("tcp", 80, 80), PortRange("tcp", 8080, 8080))


@dataclass(frozen=True)
class LinkLocal:
    address: str  # fe80::…
    interface: str  # the interface inside the destination's namespace


def _ports_between(res: Resolved, src: Endpoint, dst_peers: set[str]) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for flow in res.policy.flows:
        if not (isinstance(flow.from_, str) and flow.from_ in src.workloads):
            continue
        if isinstance(flow.to, CidrPeer) or flow.to not in dst_peers:
            continue
        for r in flow.port_ranges or (PortRange("tcp", 8080, 8080),):
            out.append((r.proto, r.lo))
            if r.hi != r.lo:
                out.append((r.proto, r.hi))
            if r.hi < 65535:
                out.append((r.proto, r.hi + 1))
    return out


def _port_list(res: Resolved, src: Endpoint, peers: set[str], sample: Sequence[PortRange]) -> list[tuple[str, int]]:
    ports = _ports_between(res, src, peers) + [(p.proto, p.lo) for p in sample]
    seen: dict[tuple[str, int], None] = {}
    for p in ports:
        if p[0] in ("tcp", "udp"):  # sctp cannot be probed portably
            seen.setdefault(p, None)
    return list(seen)


def _route_net(src: Endpoint, res: Resolved, a: IPAddress) -> str | None:
    """The source network a packet to `a` leaves by: the shared network, else the first of its family."""
    for name in src.networks:
        n = res.inventory.network(name)
        if n and any(a.version == s.cidr.version and a in s.cidr for s in n.subnets):
            return name
    for name in src.networks:
        n = res.inventory.network(name)
        if n and any(s.cidr.version == a.version for s in n.subnets):
            return name
    return src.networks[0] if src.networks else None


def _net_of(res: Resolved, a: IPAddress, candidates: Iterable[str]) -> str | None:
    for name in candidates:
        n = res.inventory.network(name)
        if n and any(a.version == s.cidr.version and a in s.cidr for s in n.subnets):
            return name
    return None


def expected_cells(
    res: Resolved,
    *,
    sample: Sequence[PortRange] = DEFAULT_SAMPLE,
    link_local: Mapping[str, Mapping[str, LinkLocal]] | None = None,
    world: Sequence[IPAddress] = (),
    world_netns: str | None = None,
    all_pairs: bool = False,
) -> list[Cell]:
    """`link_local`: endpoint key → network → the destination's fe80 address there (read by the caller).
    `all_pairs`: every pair of containers (the baseline), not only pairs that involve a managed one."""
    dec = Decider(res)
    cells: list[Cell] = []
    sources = [ep for ep in res.endpoints if ep.enforceable and ep.addresses and ep.netns]
    managed_nets = {n.name for n in res.managed_networks}

    for s in sources:
        for d in res.endpoints:
            if d.key == s.key or not d.addresses or not d.enforceable:
                continue
            if not all_pairs and not (s.managed or d.managed) and not set(s.networks) & set(d.networks):
                continue  # unmanaged pairs only where they share a network: "unmanaged keeps working"
            peers = set(d.workloads)
            ports = _port_list(res, s, peers, sample)
            for a in d.addresses:
                src_addrs = s.family(a.version)
                if not src_addrs:
                    continue
                src_net = _route_net(s, res, a)
                dst_net = _net_of(res, a, d.networks)
                block = topology_block(res, src_net, dst_net)
                for proto, port in ports:
                    subject, g = dec.forward(src_addrs[0], a, PROTO_NUMBERS[proto], port)
                    cells.append(_cell(res, s, d, str(a), proto, port, subject, g, block))
            for net, ll in (link_local or {}).get(d.key, {}).items():
                if net not in s.networks or net not in (link_local or {}).get(s.key, {}):
                    continue  # the source needs a usable link-local address on that network too
                src_if = next((att.interface for c in res.inventory.containers if c.name == s.key
                               for att in c.networks if att.network == net), None)
                subject = net in managed_nets
                expected = Verdict.BLOCK if subject else Verdict.ALLOW
                why = "link-local: not in any grant (default deny on managed bridges)" if subject else "unmanaged"
                proto, port = ports[0] if ports else ("tcp", 8080)
                cells.append(Cell(s.label, (s.display or s.key), d.label, (d.display or d.key), ll.address, port, proto, expected,
                                  why, s.netns, src_if or "eth0", d.netns))

        # container → host: each attached network's gateway
        for name in s.networks:
            n = res.inventory.network(name)
            if n is None:
                continue
            ports = _port_list(res, s, {"host"}, sample)
            if n.dns_enabled:
                ports.append(("tcp", 53))
            for sub in n.subnets:
                gw = sub.gateway
                src_addrs = s.family(sub.cidr.version)
                if gw is None or not src_addrs:
                    continue
                # the packet leaves by this network, so its source is the address on it
                src = next((a for a in src_addrs if a in sub.cidr), src_addrs[0])
                for proto, port in ports:
                    subject, g, dns = dec.to_host(src, gw, PROTO_NUMBERS[proto], port)
                    if not subject:
                        exp, why = Verdict.ALLOW, "not managed"
                    elif dns:
                        exp, why = Verdict.ALLOW, "DNS to the network's gateway"
                    elif g is not None:
                        exp, why = Verdict.ALLOW, f"flow {g.flow}"
                    else:
                        exp, why = Verdict.BLOCK, "default deny"
                    cells.append(Cell(s.label, (s.display or s.key), "host", None, str(gw), port, proto, exp, why, s.netns))

        # container → world: probed only with a world namespace
        if s.managed:
            ports = _port_list(res, s, {"world"}, sample[:1])
            targets: Sequence[IPAddress] = world or ([ipaddress.ip_address("192.0.2.1")] if _has_world(res, s) else [])
            for w in targets:
                src_addrs = s.family(w.version)
                if not src_addrs:
                    continue
                for proto, port in ports:
                    subject, g = dec.forward(src_addrs[0], w, PROTO_NUMBERS[proto], port)
                    internal = all(
                        (n := res.inventory.network(x)) is not None and n.internal for x in s.networks
                    )
                    block = f"netavark: {', '.join(s.networks)} internal" if internal else None
                    cell = _cell(res, s, None, str(w), proto, port, subject, g, block, to_peer="world")
                    if not world:
                        cell = Cell(**{**cell.__dict__, "netns": None, "why": cell.why + " (no --world-netns)"})
                    elif world_netns is None:
                        cell = Cell(**{**cell.__dict__, "netns": None})
                    cells.append(cell)
    return cells


def _has_world(res: Resolved, s: Endpoint) -> bool:
    return any(f.to == "world" and isinstance(f.from_, str) and f.from_ in s.workloads for f in res.policy.flows)


def _cell(res: Resolved, s: Endpoint, d: Endpoint | None, address: str, proto: str, port: int,
          subject: bool, g: object, block: str | None, to_peer: str | None = None) -> Cell:
    if block:
        exp, why = Verdict.BLOCK, block
    elif not subject:
        exp, why = Verdict.ALLOW, "not managed"
    elif g is not None:
        exp, why = Verdict.ALLOW, f"flow {getattr(g, 'flow', '?')}"
    else:
        exp, why = Verdict.BLOCK, "default deny"
    return Cell(
        from_peer=s.label,
        from_container=(s.display or s.key),
        to_peer=to_peer or (d.label if d else "world"),
        to_container=(d.display or d.key) if d else None,
        address=address,
        port=port,
        proto=proto,
        expected=exp,
        why=why,
        netns=s.netns,
        to_netns=d.netns if d else None,
    )
