"""`podwall demo [--keep]`: what a new user sees first."""

from __future__ import annotations

import sys
import time

import click
from rich.console import Console
from rich.markup import escape
from rich.rule import Rule

from podwall.cli import cli
from podwall.errors import EnvironmentProblem
from podwall.exitcodes import RC


@click.command()
@click.option("--keep", is_flag=True, help="Leave the containers, networks and podwall table in place")
@click.option("--timeout-ms", type=click.IntRange(10, 5000), default=300, show_default=True)
def demo(keep: bool, timeout_ms: int) -> int:
    """Start a small shop on plain Podman networks, show what reaches what, apply examples/shop.yaml,
    and show it again."""
    import os

    from podwall import demo as d
    from podwall import enforce, host, verify
    from podwall.nft.live import Nft
    from podwall.podman.live import read_inventory
    from podwall.podman.networks import is_rootless
    from podwall.report import matrix, reach

    out = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200)

    def say(msg: str) -> None:
        out.print(escape(msg))

    if os.geteuid() != 0 or is_rootless():
        raise EnvironmentProblem("the demo needs root (rootful Podman and nftables)")
    if Nft().exists():
        raise EnvironmentProblem("a podwall policy is already loaded (table inet podwall); the demo would "
                                 "replace it. Run `podwall reset` first if that is what you want.")
    t0 = time.monotonic()
    made = d.Made()
    rc = RC.OK
    with d.podman_runs(say):
        taken = d.conflicts()
        if taken:
            raise EnvironmentProblem(f"the demo's names are taken: {', '.join(taken)}")
        try:
            out.print(Rule("1. a small shop, the way most people run it"))
            d.start_shop(made)
            d.wait_listening()
            say("networks shop-front, shop-back (plain bridges); containers shop-web, shop-api, shop-db, "
                "shop-worker, shop-stray (busybox httpd on 8080 or 5432)")
            out.print(Rule("2. before: podwall verify --baseline"))
            _, cells = verify.cells_for(verify.baseline_policy(), read_inventory(), sample=d.SAMPLE,
                                        world_netns=None, link_local=False)
            out.print(reach.render(verify.probe(cells, timeout_ms)))
            say("Every container reaches every other one, across networks, and the host's services too.")

            out.print(Rule("3. podwall apply -f examples/shop.yaml"))
            say(d.policy_text())
            status = host.br_netfilter_status()
            if not status.active:
                for line in host.enable_br_netfilter(persist=False):
                    say(f"host change for the demo (not persisted): {line}")
            loaded = d.load_demo_policy()
            with enforce.lock():
                made.table = True
                p = enforce.apply(loaded, enforce.live_environment()).plan
            rs = p.ruleset
            say(f"loaded table inet podwall: {rs.flow_count} flows → {rs.element_count} map elements, "
                f"{len(rs.sets['managed_ifaces'])} managed bridges; unmatched: {', '.join(p.resolved.unmatched) or '-'}")

            out.print(Rule("4. after: podwall verify -f examples/shop.yaml"))
            _, cells = verify.cells_for(loaded.policy, read_inventory(), sample=d.SAMPLE, world_netns=None)
            pairs = verify.probe(cells, timeout_ms)
            out.print(matrix.render_compact(pairs))
            rc = matrix.summarize(pairs).rc
        finally:
            if keep:
                say("kept: containers shop-*, networks shop-front/shop-back, table inet podwall "
                    "(`podwall reset`, `podman rm -f shop-web shop-api shop-db shop-worker shop-stray`, "
                    "`podman network rm shop-front shop-back`)")
            else:
                for problem in d.cleanup(made):
                    say(f"cleanup: {problem}")
    out.print(Rule())
    say(f"demo finished in {time.monotonic() - t0:.1f} s" + ("" if keep else "; everything it made is removed"))
    return rc


cli.add_command(demo)
