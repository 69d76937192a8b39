"""Gather the Facts that podwall.doctor judges. Read-only, except for one throwaway container (removed)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from podwall import proc
from podwall.doctor import CONTAINERS_CONF_FIX, Facts, RunResult, classify_run_failure
from podwall.errors import EnvironmentProblem
from podwall.host import br_netfilter_status, running_programs
from podwall.podman.image import ensure_busybox_image

NETAVARK_PATHS = (
    "/usr/lib/podman/netavark",
    "/usr/libexec/podman/netavark",
    "/usr/local/libexec/podman/netavark",
)
DOCTOR_IMAGE = "localhost/podwall-box:latest"  # the demo's image: one small local image, no registry


def _text(argv: list[str], timeout: float = 30) -> tuple[str | None, str]:
    """(stdout, "") on success, (None, why) on failure."""
    try:
        cp = proc.run(argv, timeout=timeout)
    except EnvironmentProblem as exc:
        return None, str(exc)
    return str(cp.stdout), ""


def _podman_info(podman: str) -> tuple[dict[str, object] | None, str]:
    out, err = _text([podman, "info", "--format", "json"])
    if out is None:
        return None, err
    try:
        data = json.loads(out)
    except json.JSONDecodeError as exc:
        return None, f"podman info printed invalid JSON: {exc.msg}"
    return (data, "") if isinstance(data, dict) else (None, "podman info printed no object")


def _netavark_version(info_host: dict[str, object]) -> str | None:
    backend = info_host.get("networkBackendInfo")
    if isinstance(backend, dict) and backend.get("version"):
        return str(backend["version"]).removeprefix("netavark ").strip()
    paths = [str(backend["path"])] if isinstance(backend, dict) and backend.get("path") else []
    for p in [*paths, *NETAVARK_PATHS]:
        if Path(p).is_file():
            out, _ = _text([p, "--version"], timeout=10)
            if out:
                return out.strip().removeprefix("netavark ").strip()
    return None


def _nft_state() -> tuple[str | None, str, tuple[str, ...], bool, tuple[str, ...]]:
    """(nft version, error, tables, NETAVARK iptables chains present, forward-hook drop chains)."""
    ver, err = _text(["nft", "--version"])
    if ver is None:
        return None, err, (), False, ()
    version = ver.split()[1].lstrip("v") if len(ver.split()) > 1 else ver.strip()
    out, err = _text(["nft", "-j", "list", "chains"])
    if out is None:
        return version, err, (), False, ()
    try:
        items = json.loads(out).get("nftables", [])
    except (json.JSONDecodeError, AttributeError):
        return version, "nft -j list chains printed invalid JSON", (), False, ()
    tables: set[str] = set()
    netavark_chains = False
    drops = []
    for item in items:
        ch = item.get("chain") if isinstance(item, dict) else None
        if not isinstance(ch, dict):
            continue
        table = f"{ch.get('family')} {ch.get('table')}"
        tables.add(table)
        if str(ch.get("name", "")).startswith("NETAVARK") and ch.get("family") in ("ip", "ip6"):
            netavark_chains = True
        if ch.get("hook") == "forward" and ch.get("policy") == "drop" and table != "inet podwall":
            drops.append(f"{table} {ch.get('name')}")
    tables_out, _ = _text(["nft", "list", "tables"])  # tables without chains show up here only
    for line in (tables_out or "").splitlines():
        if line.startswith("table "):
            tables.add(line.removeprefix("table ").strip())
    return version, "", tuple(sorted(tables)), netavark_chains, tuple(sorted(drops))


def netavark_installed() -> bool:
    return any(Path(p).is_file() for p in NETAVARK_PATHS)


def network_backend(podman: str = "podman") -> str | None:
    """Podman's network backend ("netavark" or "cni"), None when `podman info` fails."""
    info, _ = _podman_info(podman)
    host = info.get("host", {}) if info else {}
    return str(host.get("networkBackend") or "") or None if isinstance(host, dict) else None


def try_podman_run(podman: str = "podman") -> RunResult:
    """Start a throwaway container (no network) from the local busybox image; on a known quirk, try again
    with the containers.conf fix to prove it, through CONTAINERS_CONF for that one command only."""
    try:
        image = ensure_busybox_image(DOCTOR_IMAGE)
    except EnvironmentProblem as exc:
        return RunResult(ok=False, skipped=f"cannot build the local test image: {exc}")
    name = f"podwall-doctor-{os.getpid()}"
    argv = [podman, "run", "--rm", "--name", name, "--network", "none", image, "true"]
    try:
        cp = proc.run(argv, check=False, timeout=60)
        if cp.returncode == 0:
            return RunResult(ok=True)
        error = str(cp.stderr or cp.stdout)
        if classify_run_failure(error) is None:
            return RunResult(ok=False, error=error)
        proc.run([podman, "rm", "-f", "--ignore", name], check=False)
        with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="podwall-doctor-") as conf:
            conf.write(CONTAINERS_CONF_FIX)
            conf.flush()
            fixed = proc.run(["env", f"CONTAINERS_CONF={conf.name}", *argv], check=False, timeout=60)
        return RunResult(ok=False, error=error, ok_with_fix=fixed.returncode == 0)
    except EnvironmentProblem as exc:
        return RunResult(ok=False, error=str(exc))
    finally:
        proc.run([podman, "rm", "-f", "--ignore", name], check=False)


def gather(podman: str = "podman", *, try_run: bool = True) -> Facts:
    info, podman_error = _podman_info(podman)
    host = info.get("host", {}) if info else {}
    host = host if isinstance(host, dict) else {}
    version = info.get("version", {}) if info else {}
    security = host.get("security", {})
    nft_version, nft_error, tables, netavark_chains, drops = _nft_state()
    return Facts(
        podman_version=str(version.get("Version")) if isinstance(version, dict) and info else None,
        podman_error=podman_error or None,
        network_backend=str(host.get("networkBackend") or "") or None,
        netavark_version=_netavark_version(host) if info else None,
        nft_version=nft_version,
        nft_error=nft_error or None,
        nft_tables=tables,
        netavark_iptables_chains=netavark_chains,
        forward_drop_chains=drops,
        br=br_netfilter_status(),
        run=(try_podman_run(podman) if try_run else RunResult(ok=False, skipped="--no-run given"))
        if info
        else None,
        rootless=bool(security.get("rootless")) if isinstance(security, dict) else os.geteuid() != 0,
        programs=running_programs(),
    )
