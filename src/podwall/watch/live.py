"""Adapters the daemon needs beyond apply's: one-container inspect, pod names, conntrack for a few
addresses, and a fingerprint of netavark's rules (to tell a netavark reload from tampering with ours)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping

from podwall import proc
from podwall.errors import EnvironmentProblem
from podwall.model import Container
from podwall.nft import conntrack
from podwall.nft.compile import TABLE
from podwall.podman.live import decode_json, interfaces_by_mac, parse_container
from podwall.policy.semantics import Decider, Resolved, grants

_NO_SUCH = ("no such container", "no container with name or id", "no such object")


class Inspector:
    """`podman container inspect ID` → Container, named like read_inventory names it (pod names, not ids)."""

    def __init__(
        self,
        podman: str = "podman",
        rootless: bool = False,
        names_by_id: Callable[[], Mapping[str, str]] | None = None,
    ) -> None:
        self.podman = podman
        self.rootless = rootless
        self.names_by_id = names_by_id or (lambda: {})
        self.pods: dict[str, str] = {}  # pod id → name

    def learn_pods(self) -> None:
        cp = proc.run([self.podman, "pod", "ps", "--format", "json"], check=False)
        if cp.returncode == 0:
            for p in decode_json(cp.stdout, "podman pod ps").seq():
                pid, name = p["Id"].text(), p["Name"].text()
                if pid and name:
                    self.pods[pid] = name

    def pod_event(self, pod_id: str, name: str, status: str) -> None:
        if status == "remove":
            self.pods.pop(pod_id, None)
        elif pod_id and name:
            self.pods[pod_id] = name

    def _pod_name(self, pod_id: str) -> str | None:
        if not pod_id:
            return None
        if pod_id not in self.pods:
            cp = proc.run([self.podman, "pod", "inspect", "--format", "{{.Name}}", pod_id], check=False)
            if cp.returncode == 0 and cp.stdout.strip():
                self.pods[pod_id] = cp.stdout.strip()
        return self.pods.get(pod_id)

    def __call__(self, cid: str) -> Container | None:
        cp = proc.run([self.podman, "container", "inspect", cid], check=False, timeout=15)
        if cp.returncode != 0:
            if any(s in (cp.stderr or "").lower() for s in _NO_SUCH):
                return None
            raise EnvironmentProblem(
                f"podman container inspect {cid[:12]}: {(cp.stderr or '').strip()[:300]}"
            )
        items = decode_json(cp.stdout, "podman container inspect").seq()
        if not items:
            return None
        j = items[0]
        full_id = j["Id"].text()
        pod = self._pod_name(j["Pod"].text())
        pid = j["State"]["Pid"].integer(0)
        ifs = interfaces_by_mac(pid) if pid > 0 else {}
        return parse_container(
            j, {full_id: pod} if pod else {}, self.names_by_id(), rootless=self.rootless, interfaces=ifs
        )


def revoke_touched(res: Resolved, touched: Iterable[str]) -> int:
    """Cut established connections to or from `touched` addresses that the new state no longer allows.

    Only the grants of the namespaces holding those addresses are consulted: a few, not the whole policy.
    """
    addrs = {ipaddress.ip_address(a) for a in touched}
    if not addrs:
        return 0
    entries = [e for e in conntrack.list_entries() if e.src in addrs or e.dst in addrs or e.real_dst in addrs]
    if not entries:
        return 0
    # the grants of BOTH ends of every entry: a CIDR flow to an untouched destination still allows it
    ends = addrs | {a for e in entries for a in (e.src, e.real_dst)}
    owners = [ep for ep in res.endpoints if ends.intersection(ep.addresses)]
    decider = Decider(res, grants(res, only=owners))
    return conntrack.delete(conntrack.to_cut(entries, decider, conntrack.local_addresses()))


def netavark_fingerprint(nft: str = "nft") -> str | None:
    """A hash of netavark's chains and their handles: it changes when netavark (re)creates its rules.

    Covers both firewall drivers: iptables-nft (NETAVARK_* chains in ip/ip6 filter and nat) and nftables
    (`table inet netavark`). None when nft cannot list (it crashes on tables of a newer nft, ENVIRONMENT.md).
    """
    cp = proc.run([nft, "-j", "list", "chains"], check=False)
    if cp.returncode != 0:
        return None
    try:
        data = json.loads(cp.stdout)
    except ValueError:
        return None
    keys = []
    for item in data.get("nftables", []):
        ch = item.get("chain")
        if not isinstance(ch, dict) or ch.get("table") == TABLE:
            continue
        name, table = str(ch.get("name", "")), str(ch.get("table", ""))
        if table == "netavark" or name.upper().startswith("NETAVARK"):
            keys.append(f"{ch.get('family')}/{table}/{name}/{ch.get('handle')}")
    return hashlib.sha256("\n".join(sorted(keys)).encode()).hexdigest()[:16]
