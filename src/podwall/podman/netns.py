"""Where a container's network namespace is, and making sure it is not the host's own.

Podman reports `SandboxKey` (/run/netns/netns-…) for containers whose namespace it created; host, `ns:` and
(on 4.3) `none` containers have none, and then /proc/PID/ns/net is the way in. A pid can be reused once the
container is gone, so whatever path is chosen is checked against the host's namespace before use.
"""

from __future__ import annotations

import os

from podwall.errors import EnvironmentProblem
from podwall.model import Container, NetMode
from podwall.probe.netns import NsId, host_netns_ids


class NetnsError(EnvironmentProblem):
    """A container's network namespace cannot be used: not running, gone, or the host's own."""


def is_host_netns(path: str) -> bool:
    """True when `path` is the host's own namespace (the same check the prober runs on its descriptor)."""
    return NsId.of_stat(os.stat(path)) in host_netns_ids()


def candidate_path(c: Container) -> str | None:
    """The namespace path Podman's data points at, unchecked. None when there is nothing to enter."""
    if c.network_mode is NetMode.HOST:
        return None  # the host's namespace: never a container's
    if c.sandbox_key:
        return c.sandbox_key
    if c.network_mode is NetMode.NS and c.mode_target:
        return c.mode_target
    if c.running and c.pid:
        return f"/proc/{c.pid}/ns/net"
    return None


def netns_path(c: Container) -> str:
    """A usable path to the container's own network namespace, or NetnsError saying why there is none."""
    if c.network_mode is NetMode.HOST:
        raise NetnsError(f"{c.name} uses the host network: it has no namespace of its own")
    path = candidate_path(c)
    if path is None:
        raise NetnsError(f"{c.name} is not running: no network namespace")
    try:
        host = is_host_netns(path)
    except OSError as exc:
        raise NetnsError(f"{c.name}: cannot read network namespace {path} ({exc.strerror})") from exc
    if host:
        raise NetnsError(
            f"{c.name}: {path} is the host's own network namespace (container gone, pid reused?)"
        )
    return path
