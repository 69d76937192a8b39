"""Read the live Podman state into the inventory model.

Three Podman calls, whatever the number of containers: `ps -a --pod` (ids and pod names), one `container
inspect` for all ids, and `network ls` (which carries the same network fields as `network inspect` on 4.3
and 5.x). Everything is parsed into frozen model objects right here; nothing downstream sees Podman JSON.

Field shapes differ between versions (measured, fixtures in tests/fixtures/podman/4.3 and 5.4):
- an unspecified publish host IP is "" on 4.3 and "0.0.0.0" on 5.4: both become "" (all interfaces);
- `NetworkSettings.Networks` on 5.x also lists pseudo-networks ("host", "none", "slirp4netns") for
  containers that have no bridge network; they are not attachments;
- `SandboxKey` is "" for `none` on 4.3 and /proc/PID/ns/net on 5.4; it is "" for host and ns: on both;
- `NetworkID` is the network name on 4.3 and its id on 5.4, so the `Networks` key is used as the name;
- `HostConfig.CapAdd` lists what was added beyond the engine's configured default set. Debian's Podman 4.3
  defaults include NET_RAW, MKNOD and AUDIT_WRITE, so `--cap-add NET_RAW` is not listed there; the
  effective set (`EffectiveCaps`) is kept in `Container.effective_caps`.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from podwall import model, proc
from podwall.errors import CommandFailed, EnvironmentProblem
from podwall.model import Attachment, Container, Inventory, NetMode, Network, PortMapping, Subnet

DEFAULT_NETWORK = "podman"  # the network Podman attaches a container to when none is given

# Podman's built-in default capabilities (containers.conf `default_capabilities`, Podman >= 4.0). Only used
# when inspect has no HostConfig.CapAdd at all.
DEFAULT_CAPS = frozenset(
    {
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)

_NO_SUCH = ("no such container", "no container with name or id")


class PodmanDataError(EnvironmentProblem):
    """Podman printed something that is not the JSON shape podwall understands."""


# --- a tiny typed reader over decoded JSON: every wrong shape names where it was found -----------------


@dataclass(frozen=True)
class _J:
    value: Any
    where: str

    def _bad(self, want: str) -> PodmanDataError:
        got = type(self.value).__name__
        return PodmanDataError(f"{self.where}: expected {want}, got {got} {str(self.value)[:60]!r}")

    def __getitem__(self, key: str) -> _J:
        if self.value is None:
            return _J(None, f"{self.where}.{key}")
        if not isinstance(self.value, dict):
            raise self._bad("an object")
        return _J(self.value.get(key), f"{self.where}.{key}")

    def text(self, default: str = "") -> str:
        if self.value is None:
            return default
        if not isinstance(self.value, str):
            raise self._bad("a string")
        return self.value

    def integer(self, default: int = 0) -> int:
        if self.value is None or self.value == "":
            return default
        if isinstance(self.value, bool) or not isinstance(self.value, int | str):
            raise self._bad("an integer")
        try:
            return int(self.value)
        except ValueError:
            raise self._bad("an integer") from None

    def flag(self) -> bool:
        if self.value is None:
            return False
        if not isinstance(self.value, bool):
            raise self._bad("a boolean")
        return self.value

    def seq(self) -> list[_J]:
        if self.value is None:
            return []
        if not isinstance(self.value, list):
            raise self._bad("a list")
        return [_J(v, f"{self.where}[{i}]") for i, v in enumerate(self.value)]

    def items(self) -> Iterator[tuple[str, _J]]:
        if self.value is None:
            return iter(())
        if not isinstance(self.value, dict):
            raise self._bad("an object")
        return ((str(k), _J(v, f"{self.where}.{k}")) for k, v in self.value.items())

    def str_map(self) -> dict[str, str]:
        return {k: v.text() if isinstance(v.value, str) else json.dumps(v.value) for k, v in self.items()}


def decode_json(text: str, what: str) -> _J:
    try:
        return _J(json.loads(text or "[]"), what)
    except json.JSONDecodeError as exc:
        raise PodmanDataError(
            f"{what} printed invalid JSON ({exc.msg} at line {exc.lineno}): {text[:200]!r}"
        ) from exc


def _ip(j: _J) -> model.IPAddress | None:
    s = j.text()
    if not s:
        return None
    try:
        return ipaddress.ip_address(s.split("%")[0])
    except ValueError:
        raise PodmanDataError(f"{j.where}: not an IP address: {s!r}") from None


def _caps(items: list[_J]) -> tuple[str, ...]:
    out = {c.text().upper().removeprefix("CAP_") for c in items}
    return tuple(sorted(c for c in out if c))


# --- networks --------------------------------------------------------------------------------------------


def parse_network(j: _J) -> Network:
    name = j["name"].text()
    if not name:
        raise PodmanDataError(f"{j.where}: network without a name")
    subnets = []
    for s in j["subnets"].seq():
        try:
            cidr = ipaddress.ip_network(s["subnet"].text(), strict=False)
        except ValueError:
            raise PodmanDataError(f"{s.where}.subnet: not a CIDR: {s['subnet'].value!r}") from None
        subnets.append(Subnet(cidr=cidr, gateway=_ip(s["gateway"])))
    options = j["options"].str_map()
    isolate = options.get("isolate")
    return Network(
        name=name,
        driver=j["driver"].text("bridge"),
        id=j["id"].text(),
        subnets=tuple(subnets),
        internal=j["internal"].flag(),
        # "false" and "" mean no isolation; anything else is kept as given ("true", "strict")
        isolate=isolate if isolate not in (None, "", "false") else None,
        ipv6=j["ipv6_enabled"].flag(),
        dns_enabled=j["dns_enabled"].flag(),
        interface=j["network_interface"].text() or None,
        options=model.frozen_map(options),
    )


def parse_networks(data: _J) -> tuple[Network, ...]:
    return tuple(sorted((parse_network(n) for n in data.seq()), key=lambda n: n.name))


# --- containers ------------------------------------------------------------------------------------------


def _ports(bindings: _J) -> tuple[PortMapping, ...]:
    """Docker-shaped PortBindings ({"80/tcp": [{"HostIp","HostPort"}]}) → mappings, with ranges coalesced.

    Podman expands `-p 9000-9002:9000-9002` into one binding per port; consecutive container and host
    ports with the same protocol and host IP are joined back into one range.
    """
    flat: list[tuple[str, str, int, int | None]] = []
    for key, binds in bindings.items():
        port_s, _, proto = key.partition("/")
        try:
            cport = int(port_s)
        except ValueError:
            raise PodmanDataError(f"{bindings.where}: bad port key {key!r}") from None
        for b in binds.seq() or [_J({}, binds.where)]:
            host_ip = b["HostIp"].text()
            host_ip = "" if host_ip == "0.0.0.0" else host_ip  # 5.x spells "all interfaces" 0.0.0.0
            hport = b["HostPort"].integer(0) or None
            flat.append((proto or "tcp", host_ip, cport, hport))
    flat.sort(key=lambda t: (t[0], t[1], t[2], t[3] or 0))
    out: list[PortMapping] = []
    for proto, host_ip, cport, hport in flat:
        if out:
            last = out[-1]
            nxt = last.container_port + last.range
            if (
                (last.protocol, last.host_ip) == (proto, host_ip)
                and cport == nxt
                and last.host_port is not None
                and hport == last.host_port + last.range
            ):
                out[-1] = PortMapping(cport - last.range, proto, last.host_port, host_ip, last.range + 1)
                continue
        out.append(PortMapping(container_port=cport, protocol=proto, host_port=hport, host_ip=host_ip))
    return tuple(sorted(out, key=lambda p: (p.container_port, p.protocol, p.host_ip)))


def _attachments(networks: _J, interfaces: Mapping[str, str]) -> tuple[Attachment, ...]:
    out = []
    for name, n in networks.items():
        v4 = _ip(n["IPAddress"])
        v6 = _ip(n["GlobalIPv6Address"])
        mac = n["MacAddress"].text().lower() or None
        gw4 = _ip(n["Gateway"])
        gw6 = _ip(n["IPv6Gateway"])
        out.append(
            Attachment(
                network=name,
                ipv4=(v4,) if isinstance(v4, ipaddress.IPv4Address) else (),
                ipv6=(v6,) if isinstance(v6, ipaddress.IPv6Address) and not v6.is_link_local else (),
                mac=mac,
                interface=interfaces.get(mac) if mac else None,
                aliases=tuple(a.text() for a in n["Aliases"].seq()),
                gateway4=gw4 if isinstance(gw4, ipaddress.IPv4Address) else None,
                gateway6=gw6 if isinstance(gw6, ipaddress.IPv6Address) else None,
            )
        )
    return tuple(sorted(out, key=lambda a: a.network))


def _mode(raw: str) -> tuple[NetMode, str | None]:
    kind, _, target = raw.partition(":")
    simple = {
        "bridge": NetMode.BRIDGE,
        "default": NetMode.BRIDGE,
        "host": NetMode.HOST,
        "none": NetMode.NONE,
        "slirp4netns": NetMode.SLIRP,
        "pasta": NetMode.PASTA,
        "private": NetMode.BRIDGE,
    }
    if kind == "container":
        return NetMode.CONTAINER, target
    if kind == "ns":
        return NetMode.NS, target
    if kind in simple:
        return simple[kind], None
    # macvlan/ipvlan networks and custom network names still mean "attached to networks"
    return NetMode.BRIDGE, None


def parse_container(
    j: _J,
    pod_names: Mapping[str, str],
    names_by_id: Mapping[str, str],
    *,
    rootless: bool,
    interfaces: Mapping[str, str],
) -> Container:
    cid = j["Id"].text()
    name = j["Name"].text().lstrip("/")
    if not cid or not name:
        raise PodmanDataError(f"{j.where}: container without Id or Name")
    host = j["HostConfig"]
    settings = j["NetworkSettings"]
    state = j["State"]
    mode, target = _mode(host["NetworkMode"].text("bridge"))
    pod_id = j["Pod"].text()
    # inspect has the pod's id only; `ps --pod` has its name
    pod = pod_names.get(cid) or pod_id[:12]
    infra = j["IsInfra"].flag()
    if mode is NetMode.CONTAINER and target:
        target = names_by_id.get(target, target)
        # a pod member joins the infra container's namespace: say "pod" (PW102 exempts it)
        if pod and not infra:
            mode, target = NetMode.POD, pod
    attachments = _attachments(settings["Networks"], interfaces) if mode in _ATTACHED else ()
    if mode is NetMode.BRIDGE and [a.network for a in attachments] == [DEFAULT_NETWORK]:
        mode = NetMode.DEFAULT
    cap_add = host["CapAdd"]
    effective = _caps(j["EffectiveCaps"].seq())
    running = state["Running"].flag()
    pid = state["Pid"].integer(0)
    # For sharers the ports are the namespace owner's, and Podman lists them on the owner only.
    ports = _ports(host["PortBindings"]) if mode not in (NetMode.CONTAINER, NetMode.POD) else ()
    return Container(
        name=name,
        id=cid,
        image=j["ImageName"].text() or j["Config"]["Image"].text(),
        labels=model.frozen_map(j["Config"]["Labels"].str_map()),
        pod=pod or None,
        network_mode=mode,
        mode_target=target,
        networks=attachments,
        ports=ports,
        cap_add=_caps(cap_add.seq())
        if cap_add.value is not None
        else tuple(sorted(set(effective) - DEFAULT_CAPS)),
        effective_caps=effective,
        privileged=host["Privileged"].flag(),
        rootless=rootless,
        running=running,
        pid=pid if running and pid > 0 else None,
        sandbox_key=settings["SandboxKey"].text() or None,
        infra=infra,
    )


# Modes whose NetworkSettings.Networks are real attachments (sharers see their owner's).
_ATTACHED = frozenset({NetMode.BRIDGE, NetMode.DEFAULT, NetMode.CONTAINER, NetMode.POD})


def parse_inventory(
    ps_json: str,
    inspect_json: str,
    networks_json: str,
    *,
    rootless: bool = False,
    interfaces: Callable[[int], Mapping[str, str]] | None = None,
) -> Inventory:
    """The text of `ps -a --pod`, `container inspect` and `network ls` → Inventory.

    `interfaces(pid)` gives {mac: interface name inside the container} of a running container; without it
    (unit tests, fixtures) interface names stay unknown.
    """
    pod_names = {r["Id"].text(): r["PodName"].text() for r in decode_json(ps_json, "podman ps").seq()}
    inspected = decode_json(inspect_json, "podman container inspect").seq()
    names_by_id = {c["Id"].text(): c["Name"].text().lstrip("/") for c in inspected}

    def ifs(c: _J) -> Mapping[str, str]:
        pid = c["State"]["Pid"].integer(0)
        if interfaces is None or not c["State"]["Running"].flag() or pid <= 0:
            return {}
        return interfaces(pid)

    containers = tuple(
        sorted(
            (
                parse_container(c, pod_names, names_by_id, rootless=rootless, interfaces=ifs(c))
                for c in inspected
            ),
            key=lambda c: c.name,
        )
    )
    return Inventory(
        containers=containers, networks=parse_networks(decode_json(networks_json, "podman network ls"))
    )


# --- the adapter -----------------------------------------------------------------------------------------


def _podman(podman: str, *args: str) -> str:
    out = proc.run([podman, *args]).stdout
    return out if isinstance(out, str) else out.decode()


def _inspect(podman: str, ids: list[str]) -> str:
    return _podman(podman, "container", "inspect", *ids) if ids else "[]"


def interfaces_by_mac(pid: int, proc_root: Path = Path("/proc")) -> dict[str, str]:
    """{mac: ifname} of a running container, read from its own sysfs mount (no namespace switch needed).

    Best effort: an empty map when the container's /sys is not readable (not root, container gone).
    """
    out: dict[str, str] = {}
    base = proc_root / str(pid) / "root" / "sys" / "class" / "net"
    try:
        for dev in base.iterdir():
            try:
                mac = (dev / "address").read_text().strip().lower()
            except OSError:
                continue
            if mac and dev.name != "lo":
                out[mac] = dev.name
    except OSError:
        pass
    return out


def _missing_ids(stderr: str, ids: list[str]) -> set[str]:
    """The ids that `podman container inspect` says are gone (it names each: `no such container ID`)."""
    low = stderr.lower()
    return {i for i in ids if any(f"{s} {i.lower()}" in low for s in _NO_SUCH)}


def _ps_and_inspect(podman: str) -> tuple[str, str]:
    """`ps -a` and `container inspect` of what it lists. Containers go away in between under churn: those
    inspect names as gone are dropped and the rest inspected again (the list only shrinks); when the error
    names none of them, both are read again."""
    for _ in range(5):
        ps_json = _podman(podman, "ps", "-a", "--pod", "--format", "json")
        ids = [r["Id"].text() for r in decode_json(ps_json, "podman ps").seq()]
        while True:
            try:
                return ps_json, _inspect(podman, ids)
            except CommandFailed as exc:
                if not any(s in exc.stderr.lower() for s in _NO_SUCH):
                    raise
                gone = _missing_ids(exc.stderr, ids)
                if not gone:
                    break  # read `ps` again
                ids = [i for i in ids if i not in gone]
        time.sleep(0.05)
    raise EnvironmentProblem("podman containers kept changing while podwall read them (5 tries)")


def read_inventory(podman: str = "podman") -> Inventory:
    """Every container (running or not) and every network of this Podman, as model objects."""
    from podwall.podman.networks import is_rootless  # late: networks imports this module's parser

    ps_json, inspect_json = _ps_and_inspect(podman)
    networks_json = _podman(podman, "network", "ls", "--format", "json")
    inv = parse_inventory(
        ps_json, inspect_json, networks_json, rootless=is_rootless(), interfaces=interfaces_by_mac
    )
    return with_dns_tcp(inv, aardvark_tcp(podman))


AARDVARK_TCP_SINCE = (1, 12)  # aardvark-dns answers DNS over TCP from 1.12 on (1.4, Debian 12's, is UDP only)


@functools.cache
def aardvark_tcp(podman: str = "podman") -> bool:
    """Whether this host's aardvark-dns serves TCP: from `podman info` (dns.version), once per process.

    Static on purpose: aardvark runs only while containers use a network, so a listener check would flap.
    Unknown → False: TCP 53 to a gateway is then not an exception, and never reaches a host DNS server.
    """
    cp = proc.run([podman, "info", "--format", "json"], check=False)
    try:
        version = json.loads(cp.stdout)["host"]["networkBackendInfo"]["dns"]["version"]
    except (ValueError, KeyError, TypeError):
        return False
    m = re.search(r"(\d+)\.(\d+)", str(version))
    return bool(m) and (int(m.group(1)), int(m.group(2))) >= AARDVARK_TCP_SINCE


def mark_dns_tcp(n: Network, tcp: bool) -> Network:
    """A DNS-enabled network whose aardvark-dns also listens on TCP 53."""
    import dataclasses

    want = tcp and n.dns_enabled
    return n if n.dns_tcp == want else dataclasses.replace(n, dns_tcp=want)


def with_dns_tcp(inv: Inventory, tcp: bool) -> Inventory:
    import dataclasses

    return dataclasses.replace(inv, networks=tuple(mark_dns_tcp(n, tcp) for n in inv.networks))
