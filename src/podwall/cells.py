"""Connectivity cells: what verify expects and what it observes.

The expected side comes from the pure policy semantics (podwall.policy.semantics); the observed side from
podwall.probe. Both meet here, in plain frozen data.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Verdict(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


@dataclass(frozen=True)
class Probe:
    """One bounded connection attempt from inside a network namespace."""

    netns: str  # path of the source namespace: /proc/PID/ns/net, /run/netns/NAME, or a SandboxKey
    address: str  # destination IP, without scope
    port: int
    proto: str = "tcp"  # tcp | udp
    interface: str | None = None  # scope for IPv6 link-local (fe80::…%eth0)


@dataclass(frozen=True)
class ProbeResult:
    verdict: Verdict | None  # None: not probed
    detail: str  # connected | refused | unreachable | denied | timeout | inferred | not probed | error: …
    elapsed_ms: float = 0.0
    attempts: int = 1  # 2 when an expected-allow timeout was retried


@dataclass(frozen=True)
class Cell:
    """One (source, destination, port) cell of the connectivity matrix."""

    from_peer: str  # workload name, "host", "unmanaged", "world"
    from_container: str | None
    to_peer: str
    to_container: str | None
    address: str
    port: int
    proto: str
    expected: Verdict
    why: str = ""  # which flow allows it, or why it is blocked (default deny, netavark isolation, ...)
    netns: str | None = None  # where to probe from (None: cannot be probed)
    interface: str | None = None  # IPv6 link-local scope
    to_netns: str | None = None  # destination namespace, for a temporary UDP listener (None: none started)

    @property
    def probe(self) -> Probe | None:
        if self.netns is None:
            return None
        return Probe(self.netns, self.address, self.port, self.proto, self.interface)
