"""Churn benchmark for `podwall watch`: 200 container starts and stops with the daemon running (root).

    .venv/bin/python bench/bench_watch.py [--containers 200] [--alive 20] [--workers 2]

What it does, all in one run, on a network and containers it creates and removes:
- starts `podwall watch` (JSON logs) on a policy with a web → api flow, one api container, and a
  `podman events --format json` reader of its own (the baseline);
- starts N web containers (--workers in parallel, at most --alive at a time: the oldest is removed as
  each new one starts), then removes the rest;
- reports, from the daemon's decision log, event → enforced latency (Podman's event timestamp → the nft
  commit) of grants and revokes, p50/p99/max; the same-run baseline: how late the raw `podman events`
  stream delivers those events, and how late the daemon's inotify file tail got them;
- the daemon's CPU time (its own, and with its children: podman inspect, nft) and peak RSS (VmHWM);
- convergence: after the churn the live maps hold exactly what a full compile of the final inventory gives;
- restore: the table is deleted 5 times, time until it is back.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

CONF = '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\n'
PREFIX = f"pwbench{os.getpid() % 10000}"
POLICY = f"""\
version: 1
networks:
  {PREFIX}-net: {{}}
workloads:
  web: {{containers: ["{PREFIX}-web-*"]}}
  api: {{containers: ["{PREFIX}-api"]}}
flows:
  - {{from: web, to: api, ports: ["8080/tcp"]}}
  - {{from: web, to: host, ports: ["9100/tcp"]}}
"""


def podman(*args: str, check: bool = True) -> str:
    cp = subprocess.run(["podman", *args], capture_output=True, text=True, check=False)
    if check and cp.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {cp.stderr.strip()}")
    return cp.stdout


def pct(xs: list[float], q: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q / 100 * len(s) + 0.5) - 1))]


def fmt(xs: list[float]) -> str:
    if not xs:
        return "n=0"
    return (
        f"n={len(xs):4d}  p50 {pct(xs, 50):7.1f} ms  p99 {pct(xs, 99):7.1f} ms  "
        f"max {max(xs):7.1f} ms  mean {statistics.fmean(xs):6.1f} ms"
    )


class RawEvents(threading.Thread):
    """The baseline: `podman events --format json` as any consumer sees it, with arrival times."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.proc = subprocess.Popen(
            ["podman", "events", "--format", "json"], stdout=subprocess.PIPE, text=True
        )
        self.delays: dict[tuple[str, str], float] = {}

    def run(self) -> None:
        from podwall.watch.events import parse_event

        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            now = time.time()
            ev = parse_event(line)
            if ev is not None and ev.type == "container" and ev.name.startswith(PREFIX):
                self.delays[(ev.name, ev.status)] = (now - ev.time) * 1000

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


def proc_stat(pid: int) -> tuple[float, float, int]:
    """(own CPU s, children's CPU s, VmHWM kB)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tck = os.sysconf("SC_CLK_TCK")
    own = (int(fields[11]) + int(fields[12])) / tck
    kids = (int(fields[13]) + int(fields[14])) / tck
    hwm = next(
        int(line.split()[1])
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if line.startswith("VmHWM:")
    )
    return own, kids, hwm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log_lines(path: Path) -> list[dict]:  # type: ignore[type-arg]
    out = []
    for raw in path.read_text(errors="replace").splitlines():
        try:
            out.append(json.loads(raw))
        except ValueError:
            pass
    return out


def wait_log(path: Path, pred, timeout: float = 60.0) -> dict:  # type: ignore[no-untyped-def,type-arg]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in log_lines(path):
            if pred(d):
                return d
        time.sleep(0.05)
    raise RuntimeError(f"timeout waiting in {path}:\n{path.read_text()[-3000:]}")


def live_elements() -> dict[str, set[str]]:
    data = json.loads(
        subprocess.run(
            ["nft", "-j", "list", "table", "inet", "podwall"], capture_output=True, text=True, check=True
        ).stdout
    )
    out: dict[str, set[str]] = {}
    for item in data["nftables"]:
        for kind in ("map", "set"):
            s = item.get(kind)
            if s and s.get("name") not in ("denied4", "denied6"):
                out[s["name"]] = {json.dumps(e, sort_keys=True) for e in s.get("elem", [])}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--containers", type=int, default=200)
    ap.add_argument("--alive", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root", file=sys.stderr)
        return 3
    tmp = Path(tempfile.mkdtemp(prefix="pwbench-"))
    if "CONTAINERS_CONF" not in os.environ:
        (tmp / "containers.conf").write_text(CONF)
        os.environ["CONTAINERS_CONF"] = str(tmp / "containers.conf")
    from podwall.podman.image import ensure_busybox_image

    image = ensure_busybox_image("localhost/podwall-test-box:latest")
    policy = tmp / "policy.yaml"
    policy.write_text(POLICY)
    log = tmp / "watch.log"
    names: list[str] = []
    lock = open("/tmp/podwall-e2e.lock", "w")  # the tests' lock: never fight them over table inet podwall
    import fcntl

    fcntl.flock(lock, fcntl.LOCK_EX)
    subprocess.run(["nft", "delete", "table", "inet", "podwall"], capture_output=True)
    raw = RawEvents()
    raw.start()
    fh = open(log, "wb")
    daemon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "podwall",
            "watch",
            "-f",
            str(policy),
            "--log-format",
            "json",
            "--metrics",
            f"127.0.0.1:{free_port()}",
        ],
        stdout=fh,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_log(log, lambda d: d.get("decision") == "watching")
        api = f"{PREFIX}-api"
        names.append(api)
        podman(
            "run",
            "-d",
            "--name",
            api,
            "--network",
            f"{PREFIX}-net",
            image,
            "sh",
            "-c",
            "httpd -p 8080 -h /www; exec sleep 3600",
        )
        wait_log(log, lambda d: d.get("decision") == "grant" and api in d.get("container", []))
        time.sleep(1)
        cpu0, kids0, _ = proc_stat(daemon.pid)
        t0 = time.monotonic()
        alive: list[str] = []
        alive_lock = threading.Lock()

        def one(i: int) -> None:
            name = f"{PREFIX}-web-{i:03d}"
            with alive_lock:
                names.append(name)
            podman("run", "-d", "--name", name, "--network", f"{PREFIX}-net", image, "sleep", "3600")
            old = None
            with alive_lock:
                alive.append(name)
                if len(alive) > args.alive:
                    old = alive.pop(0)
            if old:
                podman("rm", "-f", "-t", "0", old)

        with ThreadPoolExecutor(args.workers) as ex:
            list(ex.map(one, range(args.containers)))
        for name in alive:
            podman("rm", "-f", "-t", "0", name)
        churn_s = time.monotonic() - t0
        last = f"{PREFIX}-web-{args.containers - 1:03d}"
        wait_log(log, lambda d: d.get("decision") == "revoke" and last in d.get("container", []))
        time.sleep(1.5)  # let cleanup/remove events drain
        cpu1, kids1, hwm = proc_stat(daemon.pid)

        # convergence: the live maps equal a full compile of the final inventory
        from podwall.nft.compile import compile_ruleset
        from podwall.podman.live import read_inventory
        from podwall.policy.load import load_policy
        from podwall.policy.semantics import resolve

        rs = compile_ruleset(resolve(load_policy(policy).policy, read_inventory()))
        live = live_elements()
        mismatch = {
            m: (len(live.get(m, ())), len(es)) for m, es in rs.maps.items() if len(live.get(m, ())) != len(es)
        }
        for s in ("managed4", "managed6"):
            if len(live.get(s, ())) != len(rs.sets[s]):
                mismatch[s] = (len(live.get(s, ())), len(rs.sets[s]))
        leftovers = [
            m
            for m, es in live.items()
            if m.startswith(("c2c", "to_", "from_")) and any(f'"{PREFIX}' in e for e in es)
        ]

        # restore after `nft delete table`, 5 times
        restores = []
        for _ in range(5):
            subprocess.run(["nft", "delete", "table", "inet", "podwall"], check=True)
            t = time.monotonic()
            while subprocess.run(["nft", "list", "table", "inet", "podwall"], capture_output=True).returncode:
                time.sleep(0.01)
            restores.append((time.monotonic() - t) * 1000)
            time.sleep(0.3)
    finally:
        daemon.kill()
        daemon.wait()
        fh.close()
        raw.stop()
        for n in reversed(names):
            podman("rm", "-f", "-t", "0", n, check=False)
        podman("network", "rm", "-f", f"{PREFIX}-net", check=False)
        subprocess.run(["nft", "delete", "table", "inet", "podwall"], capture_output=True)
        fcntl.flock(lock, fcntl.LOCK_UN)

    lines = [
        d
        for d in log_lines(log)
        if d.get("decision") in ("grant", "revoke")
        and any(c.startswith(f"{PREFIX}-web") for c in d.get("container", []))
    ]
    by_resync = [d for d in lines if "latency_ms" not in d]  # a timer resync got there before the event
    lines = [d for d in lines if "latency_ms" in d]
    grants = [d["latency_ms"] for d in lines if d["decision"] == "grant"]
    revokes = [d["latency_ms"] for d in lines if d["decision"] == "revoke"]
    tail = [d["delivered_ms"] for d in lines if d.get("source") == "file"]
    sources = {d.get("source") for d in lines}
    raw_init = [v for (n, st), v in raw.delays.items() if st == "init" and n.startswith(f"{PREFIX}-web")]
    raw_died = [v for (n, st), v in raw.delays.items() if st == "died" and n.startswith(f"{PREFIX}-web")]
    errors = [d for d in log_lines(log) if d.get("level") == "error"]
    print(
        f"podwall watch churn: {args.containers} starts + {args.containers} stops "
        f"({args.workers} workers, ≤{args.alive} alive) in {churn_s:.1f} s; podman {podman('--version').split()[-1]}"
    )
    print(f"  event → enforced, grant (init) : {fmt(grants)}")
    print(f"  event → enforced, revoke (died): {fmt(revokes)}")
    print(f"  event → enforced, all          : {fmt(grants + revokes)}")
    if by_resync:
        print(
            f"  ({len(by_resync)} grants/revokes were made by a timer resync before their event was handled)"
        )
    print(f"  baseline, raw `podman events` delivery (init): {fmt(raw_init)}")
    print(f"  baseline, raw `podman events` delivery (died): {fmt(raw_died)}")
    print(
        f"  daemon's inotify file tail delivery          : {fmt(tail)}  (sources used: {sorted(map(str, sources))})"
    )
    print(
        f"  daemon CPU during churn: {cpu1 - cpu0:.2f} s own + {kids1 - kids0:.2f} s children "
        f"(podman inspect, nft, conntrack) = {(cpu1 - cpu0 + kids1 - kids0) / churn_s * 100:.0f}% of one CPU"
    )
    print(f"  daemon peak RSS (VmHWM): {hwm / 1024:.1f} MiB")
    print(f"  restore after `nft delete table`: {fmt(restores)}")
    print(
        f"  converged with a full compile: {'yes' if not mismatch and not leftovers else f'NO {mismatch} {leftovers}'}"
    )
    print(f"  errors logged: {len(errors)}" + (f" first: {errors[0]}" if errors else ""))
    return 0 if not mismatch and not leftovers and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
