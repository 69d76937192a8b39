"""Benchmark the probe engine: ~1,000 probes from 20 network namespaces, in one command (root).

    .venv/bin/python bench/bench_probe.py [--namespaces 20] [--per-ns 50] [--timeout-ms 300] [--repeat 3]

Topology (all inside namespaces this script creates and deletes, addresses from 198.18.0.0/15 only):
20 source namespaces, each joined by its own veth pair to one server namespace. The server runs a temporary
TCP listener on the "open" ports and a throwaway `table inet pwprobe_<random>` that rejects (icmpx
admin-prohibited) or silently drops the "blocked" ones. Each source probes a mix of open, closed, rejected
and dropped ports, so the expected outcome of every probe is known and checked.

Timed in the same run:
- engine: one probe_all() over every namespace at once (what `podwall verify` does);
- baseline: the same probes, one namespace at a time (one probe_all() per namespace);
- optional (--sequential): one blocking connect at a time, the naive approach.
"""

from __future__ import annotations

import argparse
import errno
import os
import socket
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests.e2e.netns_lab, when run as a script

from podwall.cells import Probe, ProbeResult, Verdict
from podwall.probe import Listener, probe_all, run_in_netns
from tests.e2e.netns_lab import Lab

OPEN_BASE, CLOSED_BASE, REJECT_BASE, DROP_BASE = 8000, 9000, 10000, 11000
MIX = {"open": 0.4, "closed": 0.3, "reject": 0.2, "drop": 0.1}
EXPECTED = {
    "open": (Verdict.ALLOW, {"connected"}),
    "closed": (Verdict.ALLOW, {"refused"}),
    "reject": (Verdict.BLOCK, {"unreachable", "timeout"}),
    "drop": (Verdict.BLOCK, {"timeout"}),
}


def plan(lab: Lab, namespaces: int, per_ns: int) -> tuple[list[Probe], list[str], dict[str, int]]:
    counts = {k: round(per_ns * v) for k, v in MIX.items()}
    counts["open"] += per_ns - sum(counts.values())
    base = {"open": OPEN_BASE, "closed": CLOSED_BASE, "reject": REJECT_BASE, "drop": DROP_BASE}
    probes, kinds = [], []
    for i in range(namespaces):
        for kind, n in counts.items():
            for j in range(n):
                probes.append(Probe(lab.path(f"s{i:02d}"), f"198.18.{i}.1", base[kind] + j))
                kinds.append(kind)
    return probes, kinds, counts


def build(lab: Lab, namespaces: int, counts: dict[str, int]) -> None:
    lab.netns("srv")
    for i in range(namespaces):
        lab.netns(f"s{i:02d}")
        lab.link(f"s{i:02d}", "eth0", [f"198.18.{i}.2/24"], "srv", f"d{i}", [f"198.18.{i}.1/24"])
    r, d = counts["reject"], counts["drop"]
    lab.table(
        "srv",
        f"""
  chain input {{
    type filter hook input priority 0; policy accept;
    tcp dport {REJECT_BASE}-{REJECT_BASE + max(r, 1) - 1} reject with icmpx admin-prohibited
    tcp dport {DROP_BASE}-{DROP_BASE + max(d, 1) - 1} drop
  }}""",
    )


def check(kinds: list[str], results: list[ProbeResult]) -> tuple[Counter[str], int]:
    wrong = 0
    for kind, r in zip(kinds, results, strict=True):
        verdict, details = EXPECTED[kind]
        wrong += r.verdict != verdict or r.detail not in details
    return Counter(r.detail for r in results), wrong


def sequential(probes: list[Probe], timeout_ms: int) -> list[ProbeResult]:
    """The naive way: one blocking connect after another (still one setns per namespace)."""
    from podwall.probe.engine import classify_errno

    by_ns: dict[str, list[int]] = {}
    for i, p in enumerate(probes):
        by_ns.setdefault(p.netns, []).append(i)
    out: list[ProbeResult | None] = [None] * len(probes)
    for ns, idx in by_ns.items():

        def job(idx: list[int] = idx) -> None:
            for i in idx:
                with socket.socket() as s:
                    s.settimeout(timeout_ms / 1000)
                    err = s.connect_ex((probes[i].address, probes[i].port))
                    # with a socket timeout, connect_ex reports the timeout as EAGAIN instead of raising
                    timed_out = err in (errno.EAGAIN, errno.ETIMEDOUT)
                    out[i] = ProbeResult(Verdict.BLOCK, "timeout") if timed_out else classify_errno(err)

        run_in_netns(ns, job)
    return [r for r in out if r is not None]


def timed(fn, *args):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    res = fn(*args)
    return time.perf_counter() - t0, res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--per-ns", type=int, default=50)
    ap.add_argument("--timeout-ms", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--sequential", action="store_true", help="also time one blocking connect at a time (slow)"
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("run as root: the benchmark creates network namespaces", file=sys.stderr)
        return 3

    with Lab() as lab:
        t0 = time.perf_counter()
        probes, kinds, counts = plan(lab, args.namespaces, args.per_ns)
        build(lab, args.namespaces, counts)
        setup_s = time.perf_counter() - t0
        n = len(probes)
        print(
            f"probe benchmark: {args.namespaces} namespaces x {args.per_ns} probes = {n} probes, "
            f"timeout {args.timeout_ms} ms, mix per namespace {counts} (lab setup {setup_s:.1f} s)"
        )
        with Listener(
            lab.path("srv"),
            [(OPEN_BASE + j, "tcp") for j in range(counts["open"])],
            families=(socket.AF_INET,),
        ):
            engine, baseline = [], []
            for rep in range(args.repeat):
                t_eng, res = timed(probe_all, probes, args.timeout_ms)
                hist, wrong = check(kinds, res)
                engine.append(t_eng)
                t_base, res_b = timed(
                    lambda: [
                        r
                        for ns in dict.fromkeys(p.netns for p in probes)
                        for r in probe_all([p for p in probes if p.netns == ns], args.timeout_ms)
                    ]
                )
                _, wrong_b = check(kinds, res_b)
                baseline.append(t_base)
                print(
                    f"  run {rep + 1}: engine {t_eng:.3f} s ({wrong} unexpected), "
                    f"baseline one-namespace-at-a-time {t_base:.3f} s ({wrong_b} unexpected); "
                    f"outcomes {dict(sorted(hist.items()))}"
                )
            if args.sequential:
                t_seq, res_s = timed(sequential, probes, args.timeout_ms)
                _, wrong_s = check(kinds, res_s)
                print(f"  sequential blocking connects: {t_seq:.3f} s ({wrong_s} unexpected)")

    med_e, med_b = statistics.median(engine), statistics.median(baseline)
    print(
        f"engine (all namespaces in parallel): median {med_e:.3f} s for {n} probes "
        f"({med_e / n * 1000:.2f} ms/probe; floor is one timeout = {args.timeout_ms / 1000:.3f} s)"
    )
    print(f"baseline (one namespace at a time):  median {med_b:.3f} s")
    print(f"ratio baseline/engine: {med_b / med_e:.1f}x")
    if args.sequential:
        print(f"sequential blocking connects: {t_seq:.3f} s, ratio {t_seq / med_e:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
