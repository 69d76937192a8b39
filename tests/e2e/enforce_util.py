"""Helpers for enforcement end-to-end tests: run the real CLI, probe with an independent prober."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PROBE_SRC = r"""
import errno, socket, sys
host, port, scope = sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else ""
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(fam, socket.SOCK_STREAM)
s.settimeout(float(sys.argv[4]) if len(sys.argv) > 4 else 0.6)
addr = (host, port, 0, socket.if_nametoindex(scope)) if scope else (host, port)
try:
    s.connect(addr)
    print("connected")
except socket.timeout:
    print("timeout")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
"""
REACHABLE = {"connected", "ECONNREFUSED"}
BLOCKED = {"EHOSTUNREACH", "EACCES", "EPERM", "timeout", "ENETUNREACH"}


def podwall(*args: str, policy: Path | None = None, check_rc: int | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "podwall", *args]
    if policy is not None:
        argv += ["-f", str(policy)]
    cp = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy(), timeout=120)
    if check_rc is not None:
        assert cp.returncode == check_rc, f"{argv}: rc {cp.returncode}\n{cp.stdout}\n{cp.stderr}"
    return cp


def connect(pid: int, address: str, port: int, scope: str = "", timeout: float = 0.6) -> str:
    """One TCP connect from inside /proc/PID/ns/net, by a separate process (independent of podwall.probe)."""
    cp = subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c", PROBE_SRC, address, str(port), scope,
         str(timeout)],
        capture_output=True, text=True, timeout=10,
    )
    return cp.stdout.strip() or cp.stderr.strip()


def reachable(pid: int, address: str, port: int, scope: str = "") -> bool:
    out = connect(pid, address, port, scope)
    if out in REACHABLE:
        return True
    if out in BLOCKED:
        return False
    raise AssertionError(f"probe failed: {out}")


def link_local(pid: int, iface: str = "eth0") -> str:
    with open(f"/proc/{pid}/net/if_inet6") as fh:
        for line in fh:
            cols = line.split()
            if cols[5] == iface and cols[0].startswith("fe80"):
                raw = cols[0]
                import ipaddress

                return str(ipaddress.IPv6Address(":".join(raw[i:i + 4] for i in range(0, 32, 4))))
    raise AssertionError(f"no link-local address on {iface} in {pid}")


def nft_ruleset() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def table_exists() -> bool:
    return subprocess.run(["nft", "list", "table", "inet", "podwall"], capture_output=True).returncode == 0


def delete_table() -> None:
    subprocess.run(["nft", "delete", "table", "inet", "podwall"], capture_output=True)


def verify_json(policy: Path, *extra: str) -> dict:
    cp = podwall("verify", "--format", "json", *extra, policy=policy)
    assert cp.returncode in (0, 1), cp.stderr
    return json.loads(cp.stdout)
