"""Revocation: cut established connections that the loaded ruleset no longer allows (`conntrack -D`)."""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass

from podwall import proc
from podwall.errors import EnvironmentProblem
from podwall.model import IPAddress
from podwall.policy.semantics import Decider, Resolved

PROTOS = {"tcp": 6, "udp": 17, "sctp": 132, "icmp": 1, "icmpv6": 58}
_KV = re.compile(r"(\w+)=(\S+)")


class RevocationUnavailable(EnvironmentProblem):
    """conntrack cannot be listed or changed: revoked connections would stay up."""


@dataclass(frozen=True)
class CtEntry:
    family: int
    proto: str  # a name (tcp, udp, …) or the protocol number for the ones conntrack calls "unknown"
    src: IPAddress
    dst: IPAddress  # original destination (before DNAT)
    sport: int
    dport: int
    real_dst: IPAddress  # where the connection really goes (reply source)
    real_dport: int
    proto_num: int = 0

    @property
    def dnat(self) -> bool:
        return self.real_dst != self.dst or self.real_dport != self.dport


def parse(text: str) -> list[CtEntry]:
    """Parse `conntrack -L` lines: `tcp 6 431999 ESTABLISHED src=… dst=… sport=… dport=… src=… …`."""
    out = []
    for line in text.splitlines():
        words = line.split()
        if len(words) < 3 or not words[1].isdigit():
            continue
        proto_num = int(words[1])
        proto = words[0] if words[0] in PROTOS else str(proto_num)  # gre, esp, "unknown": by number
        kv = _KV.findall(line)
        srcs = [v for k, v in kv if k == "src"]
        dsts = [v for k, v in kv if k == "dst"]
        sports = [v for k, v in kv if k == "sport"]
        dports = [v for k, v in kv if k == "dport"]
        if len(srcs) < 2 or len(dsts) < 1:
            continue
        try:
            src, dst, rsrc = (ipaddress.ip_address(x) for x in (srcs[0], dsts[0], srcs[1]))
        except ValueError:
            continue
        sport = int(sports[0]) if sports else 0
        dport = int(dports[0]) if dports else 0
        rsport = int(sports[1]) if len(sports) > 1 else dport
        out.append(CtEntry(src.version, proto, src, dst, sport, dport, rsrc, rsport, proto_num))
    return out


def local_addresses() -> set[IPAddress]:
    cp = proc.run(["ip", "-j", "addr", "show"], check=False)
    out: set[IPAddress] = set()
    try:
        for link in json.loads(cp.stdout or "[]"):
            for a in link.get("addr_info", []):
                try:
                    out.add(ipaddress.ip_address(a["local"]))
                except (KeyError, ValueError):
                    pass
    except ValueError:
        pass
    return out


def to_cut(entries: list[CtEntry], decider: Decider, local: set[IPAddress]) -> list[CtEntry]:
    """Entries the policy applies to and no longer allows. Pure. Audit mode drops nothing, so cuts nothing."""
    if decider.res.policy.mode == "audit":
        return []
    cut = []
    for e in entries:
        if e.src in local or e.src.is_loopback:
            continue  # the host's own connections are never filtered
        if e.proto == "icmpv6" and e.src.is_link_local:
            continue  # neighbour discovery and friends: always allowed
        proto = e.proto_num or PROTOS.get(e.proto, 0)
        port = e.real_dport if proto in (6, 17, 132) else 0
        if e.real_dst in local or e.real_dst.is_loopback:
            subject, grant, dns = decider.to_host(e.src, e.real_dst, proto, port)
            if not dns and e.dport == 53 and e.dnat:  # netavark DNATs 53 to aardvark's port: match the original
                dns = decider.to_host(e.src, e.dst, proto, 53)[2]
            if subject and grant is None and not dns:
                cut.append(e)
        else:
            subject, g = decider.forward(e.src, e.real_dst, proto, port, dnat=e.dnat)
            if subject and g is None:
                cut.append(e)
    return cut


def list_entries() -> list[CtEntry]:
    """Every conntrack entry (both families). Raises RevocationUnavailable when they cannot be read."""
    if proc.which("conntrack") is None:
        raise RevocationUnavailable("the conntrack tool is not installed (apt-get install conntrack)")
    entries: list[CtEntry] = []
    for fam in ("ipv4", "ipv6"):
        cp = proc.run(["conntrack", "-L", "-f", fam], check=False)
        if cp.returncode != 0 and not cp.stdout:
            raise RevocationUnavailable(f"conntrack -L failed: {str(cp.stderr).strip()[:200]}")
        entries.extend(parse(cp.stdout or ""))
    return entries


def delete(entries: list[CtEntry]) -> int:
    """`conntrack -D` each entry; returns how many were deleted."""
    n = 0
    for e in entries:
        argv = ["conntrack", "-D", "-f", "ipv4" if e.family == 4 else "ipv6", "-p", e.proto,
                "-s", str(e.src), "-d", str(e.dst)]  # ipaddress objects: nothing but an address is printed
        if e.proto in ("tcp", "udp", "sctp"):
            argv += ["--sport", str(e.sport), "--dport", str(e.dport)]
        if proc.run(argv, check=False).returncode == 0:
            n += 1
    return n


def revoke(res: Resolved) -> int:
    """Delete conntrack entries of connections the policy does not allow. Returns how many were cut."""
    entries = list_entries()
    if not entries:
        return 0
    return delete(to_cut(entries, Decider(res), local_addresses()))
