"""Real Podman scenarios for end-to-end tests: create networks and containers, always clean up."""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field


def podman(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(["podman", *args], capture_output=True, text=True, input=input, check=False)
    if check and cp.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)} failed: {cp.stderr.strip()}")
    return cp


def nft(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cp = subprocess.run(["nft", *args], capture_output=True, text=True, check=False)
    if check and cp.returncode != 0:
        raise RuntimeError(f"nft {' '.join(args)} failed: {cp.stderr.strip()}")
    return cp


@dataclass
class Scenario:
    """Names are prefixed so that parallel runs never collide; cleanup() removes all that was made."""

    image: str
    prefix: str
    containers: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    pods: list[str] = field(default_factory=list)
    netns: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = re.sub(r"[^a-z0-9]", "", self.prefix.lower())[:16] or "pwt"

    def n(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def network(self, name: str, *opts: str) -> str:
        full = self.n(name)
        self.networks.append(full)  # before creating: a half-made object is still cleaned up
        podman("network", "create", *opts, full)
        return full

    def pod(self, name: str, *opts: str) -> str:
        full = self.n(name)
        self.pods.append(full)
        podman("pod", "create", "--name", full, *opts)
        return full

    def run(self, name: str, *opts: str, cmd: tuple[str, ...] | None = None, listen: tuple[int, ...] = (8080,)) -> str:
        """Start a container that listens with busybox httpd on each port in `listen` (TCP)."""
        full = self.n(name)
        if cmd is None:
            parts = [f"httpd -p {p} -h /www" for p in listen] + ["exec sleep 3600"]
            cmd = ("sh", "-c", "; ".join(parts))
        self.containers.append(full)  # `run` can fail after creating the container
        podman("run", "-d", "--name", full, *opts, self.image, *cmd)
        return full

    def inspect(self, name: str) -> dict:
        return json.loads(podman("inspect", name).stdout)[0]

    def pid(self, name: str) -> int:
        return int(self.inspect(name)["State"]["Pid"])

    def ip(self, name: str, network: str | None = None) -> str:
        nets = self.inspect(name)["NetworkSettings"]["Networks"]
        if network is None:
            network = next(iter(nets))
        return nets[network]["IPAddress"]

    def wait_listening(self, name: str, port: int, timeout: float = 5.0) -> None:
        """Poll /proc/net/tcp{,6} in the container's namespace until the port listens."""
        pid = self.pid(name)
        deadline = time.monotonic() + timeout
        hexport = f":{port:04X}"
        while time.monotonic() < deadline:
            for f in ("tcp", "tcp6"):
                try:
                    with open(f"/proc/{pid}/net/{f}") as fh:
                        for line in fh.readlines()[1:]:
                            cols = line.split()
                            if cols[1].endswith(hexport) and cols[3] == "0A":
                                return
                except FileNotFoundError:
                    pass
            time.sleep(0.02)
        raise TimeoutError(f"{name} does not listen on {port}")

    def add_netns(self, name: str) -> str:
        full = self.n(name)[:15]
        subprocess.run(["ip", "netns", "add", full], check=True)
        self.netns.append(full)
        return full

    def cleanup(self) -> None:
        for c in reversed(self.containers):
            podman("rm", "-f", "-t", "0", c, check=False)
        for p in reversed(self.pods):
            podman("pod", "rm", "-f", "-t", "0", p, check=False)
        for n in reversed(self.networks):
            podman("network", "rm", "-f", n, check=False)
        for ns in self.netns:
            subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        self.containers.clear()
        self.pods.clear()
        self.networks.clear()
        self.netns.clear()
