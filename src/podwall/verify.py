"""verify: gather what the pure expected matrix needs from the live host, probe, and return the pairs."""

from __future__ import annotations

import ipaddress
import json
import time
from collections.abc import Sequence

from podwall import proc
from podwall.cells import Cell, ProbeResult
from podwall.errors import EnvironmentProblem
from podwall.model import Inventory, IPAddress
from podwall.policy.expected import DEFAULT_SAMPLE, LinkLocal, expected_cells
from podwall.policy.schema import Policy, PortRange
from podwall.policy.semantics import Resolved, resolve
from podwall.probe.netns import NamespaceError, run_in_netns


IFA_F_TENTATIVE = 0x40  # duplicate address detection still running: the address cannot be used yet
IFA_F_DADFAILED = 0x08


def _read_if_inet6(wait_s: float = 3.0) -> list[tuple[str, str]]:
    """This namespace's usable fe80 addresses, waiting (bounded) for duplicate address detection to end."""
    deadline = time.monotonic() + wait_s
    while True:
        out, tentative = [], False
        with open("/proc/thread-self/net/if_inet6") as fh:
            for line in fh:
                cols = line.split()
                if len(cols) < 6 or not cols[0].startswith("fe80"):
                    continue
                flags = int(cols[4], 16)
                if flags & IFA_F_TENTATIVE:
                    tentative = True
                    continue
                if flags & IFA_F_DADFAILED:
                    continue
                raw = cols[0]
                addr = ipaddress.IPv6Address(":".join(raw[i : i + 4] for i in range(0, 32, 4)))
                out.append((str(addr), cols[5]))
        if not tentative or time.monotonic() > deadline:
            return out
        time.sleep(0.05)


def link_local_addresses(res: Resolved) -> dict[str, dict[str, LinkLocal]]:
    """Each endpoint's fe80 address per network, read inside its namespace (interface → network by name)."""
    out: dict[str, dict[str, LinkLocal]] = {}
    for ep in res.endpoints:
        if not ep.netns or not ep.enforceable or not ep.addresses:
            continue
        owner = res.inventory.container(ep.key)
        if owner is None:
            continue
        iface_net = {att.interface: att.network for att in owner.networks if att.interface}
        try:
            pairs = run_in_netns(ep.netns, _read_if_inet6)
        except (NamespaceError, OSError):
            continue
        for addr, iface in pairs:
            if iface in iface_net:
                out.setdefault(ep.key, {})[iface_net[iface]] = LinkLocal(addr, iface)
    return out


def netns_addresses(name: str) -> list[IPAddress]:
    """Global addresses inside a named network namespace (`ip netns`): the `world` the user provides."""
    cp = proc.run(["ip", "-j", "-n", name, "addr", "show"], check=False)
    if cp.returncode != 0:
        raise EnvironmentProblem(f"network namespace {name!r}: {cp.stderr.strip()}")
    out: list[IPAddress] = []
    for link in json.loads(cp.stdout or "[]"):
        for a in link.get("addr_info", []):
            ip = ipaddress.ip_address(a["local"])
            if not (ip.is_loopback or ip.is_link_local):
                out.append(ip)
    return out


def parse_ports(text: str | None) -> Sequence[PortRange]:
    from podwall.policy.schema import parse_port

    if not text:
        return DEFAULT_SAMPLE
    return tuple(parse_port(p.strip() if "/" in p else f"{p.strip()}/tcp") for p in text.split(",") if p.strip())


def baseline_policy() -> Policy:
    return Policy(version=1)


def cells_for(policy: Policy, inventory: Inventory, *, sample: Sequence[PortRange], world_netns: str | None,
              link_local: bool = True) -> tuple[Resolved, list[Cell]]:
    res = resolve(policy, inventory)
    world = netns_addresses(world_netns) if world_netns else []
    ll = link_local_addresses(res) if link_local else {}
    cells = expected_cells(res, sample=sample, link_local=ll, world=world,
                           world_netns=f"/run/netns/{world_netns}" if world_netns else None,
                           all_pairs=not policy.workloads and not policy.networks)
    return res, cells


def probe(cells: Sequence[Cell], timeout_ms: int) -> list[tuple[Cell, ProbeResult]]:
    from podwall.probe.observe import observe

    return observe(cells, timeout_ms=timeout_ms)
