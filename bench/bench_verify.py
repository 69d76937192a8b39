#!/usr/bin/env python3
"""verify benchmark (root): 20 real containers × 3 sample ports under a policy, about 1,000 probed cells.

Measures `podwall verify` end to end (live inventory, expected cells, link-local discovery, parallel probes)
and, as the baseline in the same run, the same cells probed one source namespace at a time.

    .venv/bin/python bench/bench_verify.py [--containers 20]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from podwall import enforce, verify  # noqa: E402
from podwall.demo import podman_runs  # noqa: E402
from podwall.nft.live import Nft  # noqa: E402
from podwall.podman.image import ensure_busybox_image  # noqa: E402
from podwall.podman.live import read_inventory  # noqa: E402
from podwall.policy.load import parse_policy_text  # noqa: E402
from podwall.policy.schema import PortRange  # noqa: E402
from podwall.probe.engine import probe_all  # noqa: E402
from podwall.report.matrix import summarize  # noqa: E402

P = f"pwvb{os.getpid() % 10000}"
SAMPLE = (PortRange("tcp", 22, 22), PortRange("tcp", 80, 80), PortRange("tcp", 8080, 8080))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--containers", type=int, default=20)
    args = ap.parse_args()
    lock = open("/tmp/podwall-e2e.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    if Nft().exists():
        print("table inet podwall is loaded: refusing to run over a real policy", file=sys.stderr)
        return 3
    names = [f"{P}-c{i:02d}" for i in range(args.containers)]
    nets = [f"{P}-n0", f"{P}-n1"]
    policy = parse_policy_text(
        "version: 1\nnetworks:\n" + "".join(f"  {n}: {{}}\n" for n in nets)
        + "workloads:\n"
        + "".join(f"  w{k}: {{containers: ['{P}-c*{k}']}}\n" for k in range(5))
        + "flows:\n"
        + "".join(f"  - {{from: w{k}, to: w{(k + 1) % 5}, ports: ['8080/tcp']}}\n" for k in range(5)),
        "bench.yaml",
    )
    with podman_runs(print):
        img = ensure_busybox_image("localhost/podwall-bench:latest")
        try:
            for n in nets:
                subprocess.run(["podman", "network", "create", n], check=True, capture_output=True)
            for i, name in enumerate(names):
                subprocess.run(["podman", "run", "-d", "--name", name, "--network", nets[i % 2], img, "sh", "-c",
                                "httpd -p 8080 -h /www; exec sleep 3600"], check=True, capture_output=True)
            with enforce.lock():
                enforce.apply(policy, enforce.live_environment())
            time.sleep(2)  # let IPv6 duplicate address detection finish on every veth before timing

            t0 = time.perf_counter()
            _, cells = verify.cells_for(policy.policy, read_inventory(), sample=SAMPLE, world_netns=None)
            pairs = verify.probe(cells, 300)
            t_verify = time.perf_counter() - t0
            s = summarize(pairs)

            probes = [c.probe for c in cells if c.probe is not None]
            t0 = time.perf_counter()
            by_ns: dict[str, list] = {}
            for p in probes:
                by_ns.setdefault(p.netns, []).append(p)
            for group in by_ns.values():  # baseline: one namespace at a time
                probe_all(group, 300)
            t_serial = time.perf_counter() - t0
        finally:
            Nft().delete()
            for name in names:
                subprocess.run(["podman", "rm", "-f", "-t", "0", name], capture_output=True)
            for n in nets:
                subprocess.run(["podman", "network", "rm", "-f", n], capture_output=True)
    print(f"\n{args.containers} containers, {len(cells)} cells ({len(probes)} probed): "
          f"{s.correct} correct, {s.wrong} wrong")
    print(f"podwall verify end to end:                 {t_verify:6.2f} s")
    print(f"baseline, one source namespace at a time:  {t_serial:6.2f} s   (verify is {t_serial / t_verify:.1f}x faster)")
    return 0 if s.wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
