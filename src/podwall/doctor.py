"""`podwall doctor`: what this host needs for podwall, checked and explained. Pure: Facts in, Checks out.

The facts are gathered by podwall.doctor_facts (the only part that touches the host); everything here can be
tested with hand-written Facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from podwall.exitcodes import RC, worst
from podwall.host import BrNetfilter

# The sandbox fix of ENVIRONMENT.md; shown to the user, never written to their global config by podwall.
DROPIN_PATH = "/etc/containers/containers.conf.d/50-podwall-runtime.conf"
CONTAINERS_CONF_FIX = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""
# Selects netavark where Podman persisted "cni" as its default backend (it does so when it first runs before
# netavark is installed). Used by the demo for its own commands only.
NETAVARK_CONF = """\
[network]
network_backend = "netavark"
"""


class Status(StrEnum):
    OK = "ok"
    INFO = "info"  # fine, but worth knowing
    WARN = "warn"  # works, but something will surprise you: counts as a problem
    FAIL = "fail"  # podwall (or Podman) cannot work like this
    UNKNOWN = "unknown"  # could not be checked


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    status: Status
    detail: str
    fix: str | None = None  # what the user can do
    auto_fix: bool = False  # `doctor --fix` does it


class RunQuirk(StrEnum):
    CRUN_HYBRID_CGROUPS = "crun-hybrid-cgroups"
    RLIMIT_NOFILE = "rlimit-nofile"


@dataclass(frozen=True)
class RunResult:
    ok: bool
    error: str = ""  # stderr of the failed `podman run`
    ok_with_fix: bool | None = None  # the same run with CONTAINERS_CONF_FIX; None: not tried
    skipped: str | None = None  # why no container was tried (no busybox, podman missing, ...)


@dataclass(frozen=True)
class Facts:
    podman_version: str | None = None
    podman_error: str | None = None  # why `podman info` failed
    network_backend: str | None = None  # netavark | cni
    netavark_version: str | None = None
    nft_version: str | None = None
    nft_error: str | None = None
    nft_tables: tuple[str, ...] = ()  # "inet netavark", "ip filter", ...
    netavark_iptables_chains: bool = False  # NETAVARK_* chains in ip/ip6 filter or nat
    forward_drop_chains: tuple[
        str, ...
    ] = ()  # "ip filter FORWARD": forward-hook base chains with policy drop
    br: BrNetfilter | None = None
    run: RunResult | None = None
    rootless: bool = False
    programs: frozenset[str] = field(default_factory=frozenset)  # names of running processes


def version_tuple(v: str | None) -> tuple[int, ...]:
    if not v:
        return ()
    m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", v)
    return tuple(int(x) for x in m.groups() if x is not None) if m else ()


def classify_run_failure(stderr: str) -> RunQuirk | None:
    s = stderr.lower()
    if "cgroups in hybrid mode" in s:
        return RunQuirk.CRUN_HYBRID_CGROUPS
    # crun: "setrlimit `RLIMIT_NOFILE`: Operation not permitted"; runc: "error setting rlimit type 7" (NOFILE)
    if "not permitted" in s and ("rlimit_nofile" in s or "rlimit type 7" in s):
        return RunQuirk.RLIMIT_NOFILE
    return None


def _podman(f: Facts) -> list[Check]:
    if f.podman_version is None:
        return [
            Check(
                "podman",
                "Podman",
                Status.UNKNOWN,
                f"podman does not answer: {f.podman_error or 'not installed'}",
                "apt-get install podman",
            )
        ]
    out = [Check("podman", "Podman", Status.OK, f"Podman {f.podman_version}")]
    if f.network_backend and f.network_backend != "netavark":
        out.append(
            Check(
                "network-backend",
                "Network backend",
                Status.FAIL,
                f"Podman uses the {f.network_backend} backend; podwall understands netavark only",
                'use netavark: containers.conf [network] network_backend = "netavark", then '
                "podman system reset",
            )
        )
    else:
        out.append(
            Check(
                "network-backend",
                "Network backend",
                Status.OK,
                f"netavark {f.netavark_version or '(version unknown)'}",
            )
        )
    return out


def firewall_driver(f: Facts) -> tuple[str | None, str]:
    """(driver, evidence). The driver is whatever netavark's rules on the host show; the version decides
    when no rules exist yet."""
    nft = "inet netavark" in f.nft_tables
    if nft and f.netavark_iptables_chains:
        return None, "both `table inet netavark` (nftables driver) and NETAVARK_* iptables chains are loaded"
    if nft:
        return "nftables", "`table inet netavark` is loaded"
    if f.netavark_iptables_chains:
        return "iptables", "netavark's NETAVARK_* chains are in the iptables tables"
    if version_tuple(f.netavark_version) and version_tuple(f.netavark_version) < (1, 9):
        return "iptables", f"netavark {f.netavark_version} has no nftables driver"
    return None, "no netavark rules are loaded yet (they appear with the first container on a network)"


def _firewall(f: Facts) -> list[Check]:
    out = []
    if f.nft_version is None:
        out.append(
            Check(
                "nft",
                "nftables",
                Status.UNKNOWN,
                f"nft does not answer: {f.nft_error or 'not installed'}",
                "apt-get install nftables",
            )
        )
    else:
        out.append(Check("nft", "nftables", Status.OK, f"nft {f.nft_version}"))
    driver, why = firewall_driver(f)
    if driver is None and "both" in why:
        out.append(
            Check(
                "firewall-driver",
                "netavark firewall driver",
                Status.WARN,
                f"{why}: rules of two Podman setups (or a stale table left by another Podman) are active, "
                "and a drop in either is final",
                "if one of them is no longer used, delete its rules: `nft delete table inet netavark` "
                "(nftables driver) or the NETAVARK_* chains (iptables driver)",
            )
        )
    else:
        out.append(
            Check(
                "firewall-driver",
                "netavark firewall driver",
                Status.OK if driver else Status.INFO,
                f"{driver or 'not known yet'}: {why}",
            )
        )
    for chain in f.forward_drop_chains:
        out.append(
            Check(
                "forward-drop",
                "Forward policy",
                Status.WARN,
                f"{chain} drops forwarded packets by default: container traffic that podwall allows can "
                "still be dropped there (a drop in any base chain is final)",
                "allow Podman's bridges in that chain, or remove the drop policy",
            )
        )
    if "firewalld" in f.programs:
        out.append(
            Check(
                "firewalld",
                "firewalld",
                Status.WARN,
                "firewalld is running: its zones filter forwarded traffic too, and a reload rebuilds its "
                "tables (podwall's `table inet podwall` is left alone, but a drop in firewalld is final)",
                "put Podman's bridges in a zone that forwards, e.g. `firewall-cmd --zone=trusted "
                "--add-interface=podman1`",
            )
        )
    if "dockerd" in f.programs:
        out.append(
            Check(
                "docker",
                "Docker",
                Status.WARN,
                "Docker is running: it sets the iptables FORWARD policy to DROP, which drops Podman's "
                "bridged traffic under the nftables driver",
                "run Docker and Podman on different hosts, or accept Podman's bridges in DOCKER-USER",
            )
        )
    return out


def _br_netfilter(f: Facts) -> list[Check]:
    br = f.br
    if br is None:
        return [Check("br-netfilter", "br_netfilter", Status.UNKNOWN, "not checked")]
    keys = br.describe()
    if not br.active:
        return [
            Check(
                "br-netfilter",
                "br_netfilter",
                Status.FAIL,
                f"{keys}: traffic between containers on the same bridge bypasses nftables, so podwall "
                "cannot filter it and `apply` refuses",
                "podwall doctor --fix (or: podwall apply --enable-br-netfilter); this affects every bridge "
                "on the host",
                auto_fix=True,
            )
        ]
    if not br.persisted:
        return [
            Check(
                "br-netfilter",
                "br_netfilter",
                Status.INFO,
                f"active ({keys}) but not persisted: it may be off after a reboot",
                "podwall doctor --fix persists it",
                auto_fix=True,
            )
        ]
    return [Check("br-netfilter", "br_netfilter", Status.OK, f"active and persisted ({keys})")]


def _run(f: Facts) -> list[Check]:
    r = f.run
    if r is None or r.skipped:
        return [
            Check("podman-run", "podman run", Status.UNKNOWN, f"not tried: {r.skipped if r else 'no Podman'}")
        ]
    if r.ok:
        return [Check("podman-run", "podman run", Status.OK, "a throwaway container starts")]
    quirk = classify_run_failure(r.error)
    err = r.error.strip().splitlines()[-1].removeprefix("Error: ") if r.error.strip() else "(no message)"
    if quirk is None:
        return [
            Check("podman-run", "podman run", Status.FAIL, f"a throwaway container does not start: {err}")
        ]
    why = {
        RunQuirk.CRUN_HYBRID_CGROUPS: "crun refuses cgroups in hybrid (v1+v2) mode; runc works",
        RunQuirk.RLIMIT_NOFILE: "Podman's default open-files limit is above this host's hard limit and the "
        "runtime may not raise it (no CAP_SYS_RESOURCE here, e.g. inside a sandbox)",
    }[quirk]
    proven = {
        True: " Tried with that configuration: the container starts.",
        False: " Tried with that configuration: it still fails, so something else is wrong too.",
        None: "",
    }[r.ok_with_fix]
    fix = (
        f"create {DROPIN_PATH} with:\n{CONTAINERS_CONF_FIX}"
        "(or point CONTAINERS_CONF at such a file for one shell). podwall does not change Podman's "
        "configuration for you: it applies to every container on this host."
    )
    return [Check("podman-run", "podman run", Status.FAIL, f"{err}: {why}.{proven}", fix)]


def _rootless(f: Facts) -> list[Check]:
    if f.rootless:
        return [
            Check(
                "rootless",
                "Rootless",
                Status.WARN,
                "Podman runs rootless: its networks live in the rootless network namespace, out of reach of "
                "the host firewall; `audit --live` works, `apply` and `watch` refuse",
                "run podwall (and the containers it should protect) as root",
            )
        ]
    return [Check("rootless", "Rootless", Status.OK, "rootful Podman")]


def run_checks(f: Facts) -> list[Check]:
    return [*_podman(f), *_firewall(f), *_br_netfilter(f), *_run(f), *_rootless(f)]


_RC = {
    Status.OK: RC.OK,
    Status.INFO: RC.OK,
    Status.WARN: RC.FINDINGS,
    Status.FAIL: RC.FINDINGS,
    Status.UNKNOWN: RC.ENVIRONMENT,
}


def exit_code(checks: list[Check]) -> int:
    """0 all fine, 1 problems found, 3 something could not be checked (highest wins)."""
    return worst(*(_RC[c.status] for c in checks))
