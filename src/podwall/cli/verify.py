"""`podwall verify`: expected vs observed connectivity, probed from inside the containers' namespaces."""

from __future__ import annotations

import click
from rich.console import Console

from podwall.cli import cli
from podwall.errors import InputError, InputProblem
from podwall.exitcodes import RC



def _console() -> Console:
    import sys

    # a matrix must never wrap: in logs and pipes use a wide virtual terminal
    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 240)


@click.command()
@click.option("-f", "--file", "policy_file", type=click.Path(dir_okay=False), help="Policy YAML file")
@click.option("--baseline", is_flag=True, help="No policy: show what can reach what today")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "junit"]), default="table")
@click.option("--ports", help="Sample ports probed for every pair, e.g. 22,80/tcp,8080 (default 22,80,8080/tcp)")
@click.option("--timeout-ms", type=click.IntRange(10, 60000), default=300, show_default=True)
@click.option("--world-netns", help="A network namespace (ip netns) standing for the outside world")
@click.option("--no-link-local", is_flag=True, help="Skip the IPv6 link-local cells")
@click.option("--by-port", is_flag=True, help="One matrix column per destination and port")
def verify(policy_file: str | None, baseline: bool, fmt: str, ports: str | None, timeout_ms: int,
           world_netns: str | None, no_link_local: bool, by_port: bool) -> int:
    """Probe every expected cell and print the expected-vs-observed matrix. Exit 1 if any cell is wrong."""
    from podwall import verify as v
    from podwall.podman.live import read_inventory
    from podwall.policy.load import load_policy
    from podwall.report import matrix, reach

    if bool(policy_file) == baseline:
        raise InputError(InputProblem(None, None, None, "give either -f POLICY or --baseline"))
    try:
        sample = v.parse_ports(ports)
    except ValueError as exc:
        raise InputError(InputProblem(None, None, None, f"--ports: {exc}")) from None
    policy = v.baseline_policy() if baseline else load_policy(str(policy_file)).policy
    _, cells = v.cells_for(policy, read_inventory(), sample=sample, world_netns=world_netns,
                           link_local=not no_link_local)
    pairs = v.probe(cells, timeout_ms)
    out = _console()
    summary = matrix.summarize(pairs)
    if fmt == "json":
        click.echo(matrix.to_json(pairs))
    elif fmt == "junit":
        click.echo(matrix.to_junit(pairs))
    elif baseline:
        out.print(reach.render(pairs))
    elif by_port:
        out.print(matrix.render(pairs))
    else:
        out.print(matrix.render_compact(pairs))
    probed = summary.correct + summary.wrong
    if probed == 0:
        out.print("[red]no cell could be probed[/red]: nothing is proven", style=None)
        return RC.INVALID_INPUT
    if baseline:
        return RC.OK
    if summary.wrong:
        _explain_missing_table()
    return summary.rc


def _explain_missing_table() -> None:
    """Wrong cells with no podwall table loaded at all: say so (on stderr), it is the likely cause."""
    from podwall.errors import PodwallError
    from podwall.nft.live import Nft

    try:
        loaded = Nft().exists()
    except PodwallError:
        return
    if not loaded:
        click.echo("note: table inet podwall is not loaded: nothing enforces this policy "
                   "(podwall apply -f FILE, or podwall status)", err=True)


cli.add_command(verify)
