"""Benchmark `podwall audit` on 1,000 generated files (compose, Quadlet, kube, shell, plus unrelated YAML).

Run: .venv/bin/python bench/bench_audit.py [--files N] [--repeat R]

Prints the best-of-R time for the full audit (discover + parse + rules + JSON formatting) and, as a baseline
measured in the same run on the same files, the time to read every file and YAML-parse the YAML ones with
the same ruamel loader. The ratio shows what podwall adds on top of unavoidable parsing.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from podwall.audit.engine import run_audit
from podwall.report import json_report
from podwall.sources.yamlload import load_documents


def compose(i: int, rnd: random.Random) -> str:
    services = []
    for s in range(rnd.randint(2, 6)):
        mode = rnd.choice(["", "    network_mode: host\n", "    network_mode: bridge\n", "    networks: [front, back]\n"])
        ports = rnd.choice(["", "    ports:\n      - 8080:80\n      - \"127.0.0.1:9000:9000\"\n", "    ports: [\"[::]:443:443\"]\n"])
        caps = rnd.choice(["", "    cap_add: [NET_ADMIN]\n", "    privileged: true\n"])
        services.append(f"  svc{s}:\n    image: registry.example.com/app{i}/svc{s}:1.0\n{mode}{ports}{caps}")
    nets = "networks:\n  front: {}\n  back:\n    internal: true\n"
    return f"# podwall: podman\nname: p{i}\nservices:\n{''.join(services)}{nets}"


def quadlet(i: int, rnd: random.Random) -> tuple[str, str]:
    if rnd.random() < 0.3:
        return "network", f"[Network]\nNetworkName=net{i}\nOptions=isolate={rnd.choice(['true', 'strict'])}\nSubnet=10.{i % 250}.0.0/24\n"
    net = rnd.choice(["Network=host\n", f"Network=net{i}.network\n", ""])
    return "container", (
        f"[Unit]\nDescription=c{i}\n\n[Container]\nImage=app{i}\n{net}PublishPort=8080:80\n"
        "PodmanArgs=--log-level=info \\\n  --cap-add=NET_RAW\n\n[Install]\nWantedBy=default.target\n"
    )


def kube(i: int, rnd: random.Random) -> str:
    docs = []
    for d in range(rnd.randint(1, 3)):
        host = "  hostNetwork: true\n" if rnd.random() < 0.3 else ""
        docs.append(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod{i}-{d}\nspec:\n{host}  containers:\n"
            f"    - name: c\n      image: app{i}\n      ports:\n        - containerPort: 80\n          hostPort: {8000 + d}\n"
            "      securityContext:\n        capabilities:\n          add: [NET_RAW]\n"
        )
    docs.append("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n")
    return "---\n".join(docs)


def shell(i: int, rnd: random.Random) -> str:
    lines = ["#!/bin/bash", "set -euo pipefail", 'echo "podman run --network host is only text"']
    for c in range(rnd.randint(1, 5)):
        lines.append(
            f"podman run -d --name c{i}-{c} \\\n  {rnd.choice(['--network host', '--net=app', '-p 8080:80', '--privileged'])} \\\n"
            f"  registry.example.com/app{i}:1.0"
        )
    lines.append(f"podman network create {rnd.choice(['', '--internal ', '-d macvlan -o parent=eth0 '])}n{i}")
    return "\n".join(lines) + "\n"


def unrelated(i: int) -> str:
    return f"on: push\njobs:\n  test{i}:\n    runs-on: ubuntu-latest\n    steps:\n      - run: make test\n"


def generate(root: Path, n: int) -> None:
    rnd = random.Random(42)
    for i in range(n):
        d = root / f"proj{i // 50}"
        d.mkdir(parents=True, exist_ok=True)
        k = i % 5
        if k == 0:
            (d / f"compose-{i}.yaml").write_text(compose(i, rnd))
        elif k == 1:
            ext, text = quadlet(i, rnd)
            (d / f"unit{i}.{ext}").write_text(text)
        elif k == 2:
            (d / f"pods-{i}.yaml").write_text(kube(i, rnd))
        elif k == 3:
            (d / f"deploy-{i}.sh").write_text(shell(i, rnd))
        else:
            (d / f"ci-{i}.yml").write_text(unrelated(i))


def baseline(root: Path) -> int:
    """Read every file; YAML-parse the YAML ones (the floor any YAML-aware audit pays)."""
    count = 0
    for dirpath, _, files in os.walk(root):
        for fn in sorted(files):
            p = os.path.join(dirpath, fn)
            text = Path(p).read_text()
            if fn.endswith((".yaml", ".yml")):
                load_documents(text, p)
            count += 1
    return count


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="podwall-bench-") as tmp:
        root = Path(tmp)
        generate(root, args.files)
        result = run_audit([str(root)])
        if result.all_errors:
            raise SystemExit(f"benchmark input produced errors: {result.all_errors[:3]}")
        t_base = best(lambda: baseline(root), args.repeat)
        t_audit = best(lambda: json_report.render(run_audit([str(root)])), args.repeat)
        print(f"files generated:      {args.files} ({len(result.files)} recognised, {args.files - len(result.files)} unrelated YAML)")
        print(f"findings:             {len(result.findings)}")
        print(f"baseline read+YAML:   {t_base:.3f} s")
        print(f"podwall audit (json): {t_audit:.3f} s  ({t_audit / args.files * 1000:.2f} ms/file)")
        print(f"ratio audit/baseline: {t_audit / t_base:.2f}x")


if __name__ == "__main__":
    main()
