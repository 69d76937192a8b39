"""Creating and removing Podman networks, and knowing whether this Podman is rootless.

podwall creates networks WITHOUT netavark's `isolate` option unless the policy asks for `isolate: strict`:
podwall enforces cross-network traffic itself (SPEC §2), and `isolate=true` would only add a partial,
confusing second layer.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence

from podwall import proc
from podwall.errors import CommandFailed, EnvironmentProblem
from podwall.model import IPNetwork, Network
from podwall.podman.live import decode_json, parse_network

_NOT_FOUND = ("network not found", "unable to find network")


class NetworkCreateFailed(EnvironmentProblem):
    """`podman network create` refused: the message says why (and what to do for known causes)."""


def is_rootless() -> bool:
    """True when the local Podman runs rootless.

    A local podman CLI is rootless exactly when it is run by a non-root user (it then re-executes itself in
    a user namespace), so the effective uid answers without a `podman info` round trip.
    """
    return os.geteuid() != 0


def create_args(
    name: str,
    subnets: Sequence[str | IPNetwork] = (),
    *,
    internal: bool = False,
    isolate_strict: bool = False,
    ipv6: bool = False,
) -> list[str]:
    """The `podman network create` arguments (after the program name). Pure, for tests and `plan`."""
    args = ["network", "create"]
    for s in subnets:
        args += ["--subnet", str(ipaddress.ip_network(str(s), strict=True))]
    if internal:
        args.append("--internal")
    if ipv6 or any(ipaddress.ip_network(str(s)).version == 6 for s in subnets):
        args.append("--ipv6")
    if isolate_strict:
        args += ["--opt", "isolate=strict"]
    args += ["--", name]
    return args


def create_network(
    name: str,
    subnets: Sequence[str | IPNetwork] = (),
    internal: bool = False,
    isolate_strict: bool = False,
    ipv6: bool = False,
    *,
    podman: str = "podman",
) -> Network:
    """Create a bridge network and return it as Podman reports it (with the subnets Podman picked)."""
    try:
        args = create_args(name, subnets, internal=internal, isolate_strict=isolate_strict, ipv6=ipv6)
    except ValueError as exc:
        raise NetworkCreateFailed(f"network {name}: {exc}") from exc
    try:
        proc.run([podman, *args])
    except CommandFailed as exc:
        why = exc.stderr.strip()
        if isolate_strict and "parsebool" in why.lower():
            # netavark before 1.7 (Podman < 4.7) only knows isolate=true|false
            why += " (isolate=strict needs Podman >= 4.7 / netavark >= 1.7)"
        raise NetworkCreateFailed(f"podman network create {name} failed: {why}") from exc
    return inspect_network(name, podman=podman)


def inspect_network(name: str, *, podman: str = "podman") -> Network:
    out = proc.run([podman, "network", "inspect", "--", name]).stdout
    nets = decode_json(out, f"podman network inspect {name}").seq()
    if len(nets) != 1:
        raise EnvironmentProblem(f"podman network inspect {name}: expected one network, got {len(nets)}")
    from podwall.podman.live import aardvark_tcp, mark_dns_tcp

    return mark_dns_tcp(parse_network(nets[0]), aardvark_tcp(podman))


def remove_network(name: str, *, missing_ok: bool = True, podman: str = "podman") -> bool:
    """Remove a network. Never forces: a network still in use stays, and that is an error.

    Returns False when it did not exist (and missing_ok).
    """
    cp = proc.run([podman, "network", "rm", "--", name], check=False)
    if cp.returncode == 0:
        return True
    err = (cp.stderr or "").strip()
    if missing_ok and any(s in err.lower() for s in _NOT_FOUND):
        return False
    raise CommandFailed([podman, "network", "rm", name], cp.returncode, err)
