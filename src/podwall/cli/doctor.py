"""`podwall doctor [--fix]`: check this host for podwall and explain what is wrong and how to fix it."""

from __future__ import annotations

import dataclasses
import json

import click
from rich.console import Console
from rich.markup import escape

from podwall.cli import cli
from podwall.doctor import Check, Status, exit_code, run_checks

out = Console(highlight=False, soft_wrap=True)

_STYLE = {
    Status.OK: "green",
    Status.INFO: "cyan",
    Status.WARN: "yellow",
    Status.FAIL: "red",
    Status.UNKNOWN: "magenta",
}


def _render(checks: list[Check]) -> None:
    width = max(len(c.title) for c in checks)
    for c in checks:
        status = f"[{_STYLE[c.status]}]{c.status.value:<7}[/]"
        out.print(f"{status} {escape(c.title):<{width}}  {escape(c.detail)}")
        if c.fix and c.status is not Status.OK:
            lines = c.fix.splitlines()
            out.print(f"{'':8} [dim]fix:[/dim] {escape(lines[0])}")
            for line in lines[1:]:
                out.print(f"{'':13}{escape(line)}")


@click.command()
@click.option("--fix", is_flag=True, help="Apply the safe host fixes named in the report (br_netfilter)")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--no-run", is_flag=True, help="Do not start a throwaway container to test `podman run`")
@click.option("--podman", default="podman", show_default=True, help="The podman program to check")
def doctor(fix: bool, fmt: str, no_run: bool, podman: str) -> int:
    """Check Podman, netavark, nftables, br_netfilter and `podman run` on this host, and explain.

    Exit 0 when all is well, 1 when problems were found, 3 when something could not be checked.
    """
    from podwall.doctor_facts import gather
    from podwall.host import br_netfilter_status, enable_br_netfilter

    facts = gather(podman, try_run=not no_run)
    checks = run_checks(facts)
    changed: list[str] = []
    if fix:
        planned = br_netfilter_status().changes()
        if planned and fmt == "table":
            out.print("[bold]doctor --fix will:[/bold]")
            for p in planned:
                out.print(f"  - {escape(p)}")
        if planned:
            changed = enable_br_netfilter()
            checks = run_checks(dataclasses.replace(facts, br=br_netfilter_status()))  # only that changed
        elif fmt == "table":
            out.print("doctor --fix: nothing that podwall may fix is wrong")
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "checks": [{**dataclasses.asdict(c), "status": c.status.value} for c in checks],
                    "fixed": changed,
                    "rc": exit_code(checks),
                },
                indent=2,
            )
        )
    else:
        _render(checks)
        for c in changed:
            out.print(f"[green]changed[/green]: {escape(c)}")
        manual = [c for c in checks if c.fix and not c.auto_fix and c.status in (Status.WARN, Status.FAIL)]
        if manual:
            out.print(f"{len(manual)} problem(s) need you: podwall does not change them for you (see fix).")
    return exit_code(checks)


cli.add_command(doctor)
