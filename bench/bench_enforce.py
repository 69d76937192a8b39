#!/usr/bin/env python3
"""Enforcement benchmark (root): per-packet cost and apply time, measured side by side in one run.

Two containers, a (client) and b (echo server), on one bridge; a may reach b:8080.
  1. 1-byte TCP round trip on an established connection
  2. new-connection rate (connect, 1 byte each way, close)
for: no policy (baseline) | podwall policy + 10,000 extra flows between the same pair (10k elements in the
very map the measured packets are looked up in) | a 10,000-rule linear chain (what one rule per flow costs).
Then: compile + apply time of the 10,000-flow policy, and the time of one element update at 10k elements.

    .venv/bin/python bench/bench_enforce.py [--flows 10000] [--seconds 1] [--rtts 10000] [--repeats 11]

Rounds interleave the configurations; each figure is the median over rounds. The baseline is measured twice
per round: "no policy again (A/A check)" shows how far two identical configurations differ on this machine,
so a ratio within that spread is noise, not cost.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from podwall import enforce  # noqa: E402
from podwall.demo import podman_runs  # noqa: E402
from podwall.nft.compile import Element  # noqa: E402
from podwall.nft.live import Nft  # noqa: E402
from podwall.podman.image import ensure_busybox_image  # noqa: E402
from podwall.policy.load import parse_policy_text  # noqa: E402

P = f"pwbench{os.getpid() % 10000}"
NET, A, B = f"{P}-net", f"{P}-a", f"{P}-b"

SERVER = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 8080)); s.listen(512)
print("ready", flush=True)
def serve(c):
    c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        while True:
            d = c.recv(1)
            if not d: break
            c.sendall(d)
    except OSError:
        pass  # the client closes with RST (no TIME_WAIT pile-up): a reset here is expected
    finally:
        c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

CLIENT = r"""
import socket, struct, sys, time, json
host, rtts, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((host, 8080), timeout=2); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
for _ in range(200): s.sendall(b"x"); s.recv(1)
t0 = time.perf_counter()
for _ in range(rtts): s.sendall(b"x"); s.recv(1)
rtt_us = (time.perf_counter() - t0) / rtts * 1e6
s.close()
n = 0; t0 = time.perf_counter()
linger = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT pile-up to slow later runs down
while time.perf_counter() - t0 < seconds:
    c = socket.create_connection((host, 8080), timeout=2); c.sendall(b"x"); c.recv(1)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger); c.close(); n += 1
print(json.dumps({"rtt_us": rtt_us, "conn_per_s": n / (time.perf_counter() - t0)}))
"""


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, input=input).stdout


def policy_text(flows: int) -> str:
    lines = [
        "version: 1",
        "networks:",
        f"  {NET}: {{}}",
        "workloads:",
        f"  a: {{containers: [{A}]}}",
        f"  b: {{containers: [{B}]}}",
        "flows:",
        "  - {from: a, to: b, ports: ['8080/tcp']}",
    ]
    lines += [f"  - {{from: a, to: b, ports: ['{20000 + i}/tcp']}}" for i in range(flows)]
    return "\n".join(lines) + "\n"


def linear_chain(rules: int) -> str:
    body = "\n".join(
        f"\t\tip saddr 10.254.{i // 250}.{i % 250 + 1} tcp dport {20000 + i} accept" for i in range(rules)
    )
    return (f"table inet pwbench_linear {{\n\tchain linear {{\n\t\ttype filter hook forward priority filter - 20; "
            f"policy accept;\n{body}\n\t}}\n}}\n")


def measure(pid_a: int, ip_b: str, rtts: int, seconds: float, repeats: int) -> dict[str, float]:
    runs = []
    for _ in range(repeats):
        out = sh("nsenter", f"--net=/proc/{pid_a}/ns/net", sys.executable, "-c", CLIENT, ip_b, str(rtts),
                 str(seconds))
        runs.append(json.loads(out))
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--flows", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rtts", type=int, default=10000)
    ap.add_argument("--repeats", type=int, default=11)
    args = ap.parse_args()
    import fcntl

    lock = open("/tmp/podwall-e2e.lock", "w")  # the same lock the e2e tests take around table inet podwall
    fcntl.flock(lock, fcntl.LOCK_EX)
    nft = Nft()
    if nft.exists():
        print("table inet podwall is loaded: refusing to run the benchmark over a real policy", file=sys.stderr)
        return 3
    server = None
    with podman_runs(print):
        img = ensure_busybox_image("localhost/podwall-bench:latest")
        try:
            sh("podman", "network", "create", NET)
            for n in (A, B):
                sh("podman", "run", "-d", "--name", n, "--network", NET, img, "sleep", "3600")
            insp = json.loads(sh("podman", "inspect", A, B))
            pid_a, pid_b = insp[0]["State"]["Pid"], insp[1]["State"]["Pid"]
            ip_b = insp[1]["NetworkSettings"]["Networks"][NET]["IPAddress"]
            server = subprocess.Popen(["nsenter", f"--net=/proc/{pid_b}/ns/net", sys.executable, "-c", SERVER],
                                      stdout=subprocess.PIPE, text=True)
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"

            loaded = parse_policy_text(policy_text(args.flows), "bench.yaml")
            env = enforce.live_environment()
            inv = env.read_inventory()  # Podman's time, not podwall's: outside the compile timing
            t0 = time.perf_counter()
            plan = enforce.make_plan(loaded, inv)
            t_compile = time.perf_counter() - t0
            elements = plan.ruleset.element_count

            def podwall_on() -> None:
                nft.check(plan.ruleset.script)
                nft.apply(plan.ruleset.script)

            def linear_on() -> None:
                with tempfile.NamedTemporaryFile("w", suffix=".nft") as f:
                    f.write(linear_chain(args.flows))
                    f.flush()
                    sh("nft", "-f", f.name)

            def linear_off() -> None:
                subprocess.run(["nft", "delete", "table", "inet", "pwbench_linear"], capture_output=True)

            configs = [
                ("no policy (baseline)", lambda: None, lambda: None),
                # the baseline measured again in every round: its ratio is the noise floor of this machine
                ("no policy again (A/A check)", lambda: None, lambda: None),
                (f"podwall, {args.flows:,} extra flows", podwall_on, nft.delete),
                (f"linear chain, {args.flows:,} rules", linear_on, linear_off),
            ]
            # rounds interleave the configurations so that drift of the machine hits all of them alike
            runs: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in configs}
            t_apply = 0.0
            for _ in range(args.repeats):
                for name, on, off in configs:
                    t0 = time.perf_counter()
                    on()
                    if on is podwall_on:
                        t_apply = time.perf_counter() - t0
                    try:
                        runs[name].append(measure(pid_a, ip_b, args.rtts, args.seconds, 1))
                    finally:
                        off()
            results = {name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()}

            # one element update (add, then delete, of a fresh element) at 10k elements, one transaction each
            podwall_on()
            upd = []
            for i in range(20):
                el = Element((f"10.89.250.{i + 1}", ip_b, "tcp", "9999"), 0)
                t0 = time.perf_counter()
                nft.batch([f"add element inet podwall c2c4 {{ {el.render()} }}"])
                upd.append(time.perf_counter() - t0)
                nft.batch([f"delete element inet podwall c2c4 {{ {' . '.join(el.key)} }}"])
            nft.delete()
        finally:
            if server is not None:
                server.kill()
            subprocess.run(["nft", "delete", "table", "inet", "pwbench_linear"], capture_output=True)
            if Nft().exists() and not os.environ.get("KEEP"):
                Nft().delete()
            for n in (A, B):
                subprocess.run(["podman", "rm", "-f", "-t", "0", n], capture_output=True)
            subprocess.run(["podman", "network", "rm", "-f", NET], capture_output=True)

    base = results["no policy (baseline)"]
    print(f"\n{'configuration':32} {'1-byte RTT':>12} {'ratio':>7} {'new conn/s':>11} {'ratio':>7}   "
          f"RTT per round (µs)")
    for name, r in results.items():
        spread = " ".join(f"{x['rtt_us']:.0f}" for x in runs[name])
        print(f"{name:32} {r['rtt_us']:9.1f} µs {r['rtt_us'] / base['rtt_us']:7.3f} "
              f"{r['conn_per_s']:11.0f} {r['conn_per_s'] / base['conn_per_s']:7.3f}   {spread}")
    print(f"\ncompile {args.flows:,} flows → {elements:,} elements: {t_compile * 1000:.0f} ms; "
          f"nft -c + apply: {t_apply * 1000:.0f} ms; total {(t_compile + t_apply) * 1000:.0f} ms")
    print(f"one element update at {elements:,} elements (nft -f, one transaction): median "
          f"{statistics.median(upd) * 1000:.1f} ms, max {max(upd) * 1000:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
