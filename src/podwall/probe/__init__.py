"""Probing: bounded connection attempts from inside container network namespaces (SPEC §6).

- `observe(cells)`: expected cells in, (cell, observed) pairs out; what `podwall verify` calls.
- `probe_all(probes, timeout_ms, allow_retry)`: the engine underneath, one thread per namespace.
- `Listener(netns, ports)`: a temporary UDP/TCP listener inside a destination namespace.
"""

from podwall.probe.engine import DEFAULT_TIMEOUT_MS, classify_errno, probe_all
from podwall.probe.listener import Listener
from podwall.probe.netns import HostNamespaceError, NamespaceError, run_in_netns
from podwall.probe.observe import NOT_PROBED, observe

__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "NOT_PROBED",
    "HostNamespaceError",
    "Listener",
    "NamespaceError",
    "classify_errno",
    "observe",
    "probe_all",
    "run_in_netns",
]
