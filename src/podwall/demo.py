"""`podwall demo`: a small shop on plain Podman networks, before and after podwall.

Everything it makes (image, networks, containers, the podwall table) is recorded and removed at the end
unless --keep. It refuses to run where it would clobber something of the user's (same names, a loaded
podwall policy).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources

from podwall import proc
from podwall.errors import EnvironmentProblem
from podwall.policy.load import LoadedPolicy, parse_policy_text
from podwall.policy.schema import PortRange

IMAGE = "localhost/podwall-demo:latest"
NETWORKS = ("shop-front", "shop-back")
# name, podman arguments, ports its busybox httpd listens on
CONTAINERS: tuple[tuple[str, tuple[str, ...], tuple[int, ...]], ...] = (
    ("shop-web", ("--network", "shop-front", "-p", "127.0.0.1:18080:8080"), (8080,)),
    ("shop-api", ("--network", "shop-front", "--network", "shop-back", "--label", "app=shop-api"), (8080,)),
    ("shop-db", ("--network", "shop-back"), (5432,)),
    ("shop-worker", ("--network", "shop-back"), (8080,)),
    ("shop-stray", ("--network", "shop-front"), (8080,)),
)
SAMPLE = (PortRange("tcp", 22, 22), PortRange("tcp", 5432, 5432), PortRange("tcp", 8080, 8080))


def policy_text() -> str:
    return resources.files("podwall.data").joinpath("shop.yaml").read_text()


def load_demo_policy() -> LoadedPolicy:
    return parse_policy_text(policy_text(), "examples/shop.yaml")


@dataclass
class Made:
    image: bool = False
    networks: list[str] = field(default_factory=list)
    containers: list[str] = field(default_factory=list)
    table: bool = False


def _exists(kind: str, name: str) -> bool:
    return proc.run(["podman", kind, "exists", name], check=False).returncode == 0


def conflicts() -> list[str]:
    out = [f"network {n}" for n in NETWORKS if _exists("network", n)]
    out += [f"container {c}" for c, _, _ in CONTAINERS if _exists("container", c)]
    return out


@contextmanager
def podman_runs(say: Callable[[str], None]) -> Iterator[None]:
    """Make Podman usable for the demo's own commands where a known host quirk stops it: `podman run` failing
    (crun with hybrid cgroups, rlimits) or Podman set to the CNI network backend while netavark is installed.

    Uses a private containers.conf through CONTAINERS_CONF for this process only, and says so: the user's
    global configuration is never touched (`podwall doctor` explains the permanent fix).
    """
    from podwall.doctor import CONTAINERS_CONF_FIX, NETAVARK_CONF, classify_run_failure
    from podwall.doctor_facts import netavark_installed, network_backend, try_podman_run

    if "CONTAINERS_CONF" in os.environ:
        yield
        return
    parts: list[str] = []
    backend = network_backend()
    if backend is not None and backend != "netavark":
        if not netavark_installed():
            raise EnvironmentProblem(
                f"Podman uses the {backend} network backend and netavark is not installed; podwall needs "
                "netavark: apt-get install netavark aardvark-dns (see podwall doctor)"
            )
        parts.append(NETAVARK_CONF)
        say(f"note: Podman's default network backend here is {backend}; the demo selects netavark for its own "
            "networks and containers through a private containers.conf (`podwall doctor` explains)")
    result = try_podman_run()
    if not result.ok:
        quirk = classify_run_failure(result.error)
        if quirk is None or not result.ok_with_fix:
            raise EnvironmentProblem(
                f"`podman run` does not work here: {result.error.strip()[:300]} (see podwall doctor)"
            )
        parts.append(CONTAINERS_CONF_FIX)
        say(f"note: `podman run` hits a known host quirk ({quirk.value}); the demo uses a private "
            f"containers.conf for its own containers only (`podwall doctor` explains the permanent fix)")
    if not parts:
        yield
        return
    with tempfile.NamedTemporaryFile("w", suffix=".conf", prefix="podwall-demo-") as conf:
        conf.write("".join(parts))
        conf.flush()
        os.environ["CONTAINERS_CONF"] = conf.name
        try:
            yield
        finally:
            os.environ.pop("CONTAINERS_CONF", None)


def start_shop(made: Made) -> None:
    from podwall.podman.image import ensure_busybox_image, image_exists

    made.image = not image_exists(IMAGE)
    ensure_busybox_image(IMAGE)
    for n in NETWORKS:
        made.networks.append(n)
        proc.run(["podman", "network", "create", n])  # plain networks, as most people run them
    for name, args, ports in CONTAINERS:
        made.containers.append(name)
        script = "; ".join([f"httpd -p {p} -h /www" for p in ports] + ["exec sleep 86400"])
        # `sleep` as PID 1 ignores SIGTERM: stop with SIGKILL so that `podman rm -f` is instant (--keep)
        proc.run(["podman", "run", "-d", "--stop-signal", "KILL", "--name", name, *args, IMAGE, "sh", "-c", script])


def wait_listening(timeout_s: float = 10.0) -> None:
    """Poll each container's /proc/net/tcp until its httpd listens (no sleeps)."""
    import json
    import time

    deadline = time.monotonic() + timeout_s
    for name, _, ports in CONTAINERS:
        pid = json.loads(proc.run(["podman", "inspect", name]).stdout)[0]["State"]["Pid"]
        for port in ports:
            needle = f":{port:04X}"
            while not _listens(pid, needle):
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"{name} does not listen on {port}")
                time.sleep(0.02)


def _listens(pid: int, needle: str) -> bool:
    for table in ("tcp", "tcp6"):  # busybox httpd binds [::] (dual stack) where IPv6 exists
        try:
            with open(f"/proc/{pid}/net/{table}") as fh:
                if any(ln.split()[1].endswith(needle) and ln.split()[3] == "0A" for ln in fh.readlines()[1:]):
                    return True
        except OSError:
            pass
    return False


def cleanup(made: Made) -> list[str]:
    """Remove what the demo made; returns problems (never raises: the demo's own error matters more)."""
    problems = []
    if made.table:
        from podwall.nft.live import Nft

        try:
            Nft().delete()
        except EnvironmentProblem as exc:
            problems.append(str(exc))
    for c in reversed(made.containers):
        proc.run(["podman", "rm", "-f", "-t", "0", c], check=False)
    for n in reversed(made.networks):
        if proc.run(["podman", "network", "rm", "-f", n], check=False).returncode != 0:
            problems.append(f"could not remove network {n}")
    if made.image:
        proc.run(["podman", "rmi", "-f", IMAGE], check=False)
    return problems
