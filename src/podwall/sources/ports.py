"""Port publishing specs shared by compose short syntax, `podman run -p` and Quadlet `PublishPort=`.

Syntax: `[[HOST_IP:][HOST_PORT]:]CONTAINER_PORT[/PROTO]`, ports may be ranges `A-B`, an IPv6 host IP is
written in brackets (`[::]:8080:80`). Values still holding a `$VAR` after default substitution cannot be
known statically: an unknown host port becomes "Podman picks one" (it is still published), an unknown
container port becomes 0 ("not known statically").
"""

from __future__ import annotations

import ipaddress
import re

from podwall.model import Loc, PortMapping

PROTOCOLS = frozenset({"tcp", "udp", "sctp"})
UNKNOWN_PORT = 0  # container port not known statically (variable, or `--publish-all`)

# ${VAR:-default} / ${VAR-default} → default; keeps the rest (still marked unknown by the `$`).
_DEFAULT_RE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?-([^}]*)\}")


class PortSpecError(ValueError):
    pass


def substitute_defaults(value: str) -> str:
    return _DEFAULT_RE.sub(lambda m: m.group(1), value)


def _port_range(text: str, what: str) -> tuple[int | None, int]:
    """(first port, count); (None, 1) when unknown."""
    text = text.strip()
    if "$" in text or text == "":
        return None, 1
    lo_s, sep, hi_s = text.partition("-")
    try:
        lo = int(lo_s)
        hi = int(hi_s) if sep else lo
    except ValueError:
        raise PortSpecError(f"{what} {text!r} is not a port or range") from None
    if not (0 <= lo <= 65535 and 0 <= hi <= 65535) or hi < lo:
        raise PortSpecError(f"{what} {text!r} is out of range")
    return lo, hi - lo + 1


def parse_port_spec(spec: str, loc: Loc | None = None) -> PortMapping:
    s = substitute_defaults(str(spec).strip())
    if not s:
        raise PortSpecError("empty port mapping")
    proto = "tcp"
    if "/" in s:
        s, proto = s.rsplit("/", 1)
        proto = proto.strip().lower()
        if proto not in PROTOCOLS:
            raise PortSpecError(f"unknown protocol {proto!r} in {spec!r}")
    host_ip = ""
    if s.startswith("["):
        end = s.find("]")
        if end < 0 or s[end + 1 : end + 2] != ":":
            raise PortSpecError(f"bad IPv6 host address in {spec!r}")
        host_ip = s[1:end]
        parts = s[end + 2 :].split(":")
        if len(parts) != 2:
            raise PortSpecError(f"expected [IP]:HOST_PORT:CONTAINER_PORT in {spec!r}")
        host_s, cont_s = parts
    else:
        parts = s.split(":")
        if len(parts) == 1:
            host_s, cont_s = "", parts[0]
        elif len(parts) == 2:
            host_s, cont_s = parts
        else:
            # IP:HOST:CONTAINER; an unbracketed IPv6 address keeps its own colons.
            host_ip = ":".join(parts[:-2])
            host_s, cont_s = parts[-2], parts[-1]
    if host_ip and "$" not in host_ip:
        try:
            ipaddress.ip_address(host_ip)
        except ValueError:
            raise PortSpecError(f"host IP {host_ip!r} in {spec!r} is not an IP address") from None
    host_port, host_count = _port_range(host_s, "host port")
    cont_port, cont_count = _port_range(cont_s, "container port")
    if cont_s.strip() == "":
        raise PortSpecError(f"missing container port in {spec!r}")
    if host_port is not None and cont_port is not None and host_count not in (1, cont_count):
        raise PortSpecError(f"host and container port ranges differ in length in {spec!r}")
    return PortMapping(
        container_port=cont_port if cont_port is not None else UNKNOWN_PORT,
        protocol=proto,
        host_port=host_port or None,  # 0 means "Podman picks one", like an empty host port
        host_ip=host_ip,
        range=max(cont_count, host_count),
        loc=loc,
    )
