"""Build inventories for pure tests without Podman."""

from __future__ import annotations

import ipaddress as ip

from podwall.model import Attachment, Container, Inventory, NetMode, Network, Subnet, frozen_map

NETS = {
    "front": ("10.89.1.0/24", "podman1", False, None),
    "back": ("10.89.2.0/24", "podman2", True, None),
    "plain": ("10.88.0.0/16", "podman0", False, None),
    "dual": ("10.89.3.0/24", "podman3", False, "fd00:3::/64"),
}


def network(name: str, *, internal: bool | None = None, isolate: str | None = None, dns: bool = True) -> Network:
    cidr, iface, is_internal, v6 = NETS[name]
    subnets = [Subnet(ip.ip_network(cidr), ip.ip_network(cidr).network_address + 1)]
    if v6:
        subnets.append(Subnet(ip.ip_network(v6), ip.ip_network(v6).network_address + 1))
    return Network(name, subnets=tuple(subnets), internal=is_internal if internal is None else internal,
                   isolate=isolate, dns_enabled=dns, interface=iface, ipv6=bool(v6))


def container(name: str, *addrs: tuple[str, str], labels: dict[str, str] | None = None,
              mode: NetMode = NetMode.BRIDGE, target: str | None = None, pod: str | None = None,
              infra: bool = False, pid: int = 1000) -> Container:
    atts = []
    for net, a in addrs:
        addr = ip.ip_address(a)
        atts.append(Attachment(net, ipv4=(addr,) if addr.version == 4 else (),
                               ipv6=(addr,) if addr.version == 6 else (), interface=f"eth{len(atts)}"))
    return Container(name, id=f"id-{name}", labels=frozen_map(labels or {}), network_mode=mode,
                     mode_target=target, networks=tuple(atts), running=True, pid=pid, pod=pod, infra=infra)


def shop() -> Inventory:
    return Inventory(
        containers=(
            container("web", ("front", "10.89.1.2"), pid=101),
            container("api", ("front", "10.89.1.3"), ("back", "10.89.2.3"), labels={"app": "api"}, pid=102),
            container("db", ("back", "10.89.2.4"), pid=103),
            container("stray", ("front", "10.89.1.9"), pid=104),
            container("u1", ("plain", "10.88.0.5"), pid=105),
            container("hostnet", mode=NetMode.HOST, labels={"app": "api"}, pid=106),
        ),
        networks=(network("front"), network("back"), network("plain")),
    )


SHOP_POLICY = """\
version: 1
networks:
  front: {}
  back: {internal: true}
workloads:
  web: {containers: ["web", "web-*"]}
  api: {labels: {app: api}}
  db: {containers: [db]}
flows:
  - {from: web, to: api, ports: ["8080/tcp"]}
  - {from: api, to: db, ports: ["5432/tcp", "6000-6010/udp"]}
  - {from: world, to: web, ports: ["443/tcp"]}
  - {from: api, to: {cidr: 203.0.113.0/24}, ports: ["443/tcp"]}
  - {from: web, to: host, ports: ["9100/tcp"]}
  - {from: db, to: world}
"""
