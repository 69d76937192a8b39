"""`podwall audit`: report network exposure in files and live Podman state."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.markup import escape

from podwall.audit.engine import AuditResult, run_audit
from podwall.audit.findings import Severity
from podwall.cli import cli, err_console
from podwall.errors import InputProblem, PodwallError
from podwall.model import Inventory
from podwall.report import json_report, sarif, table


def _read_live() -> Inventory:
    """The live inventory (podwall.podman.live), imported late so file audits never need Podman."""
    from podwall.podman.live import read_inventory

    return read_inventory()


@cli.command("audit")
@click.argument("paths", nargs=-1, type=click.Path(path_type=str))
@click.option("--live", is_flag=True, help="Also audit running and created Podman containers and networks.")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json", "sarif"]), default="table", show_default=True
)
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.LOW.value,
    show_default=True,
    help="Exit 1 when a finding has this severity or higher.",
)
@click.option("--exclude", "excludes", multiple=True, metavar="GLOB", help="Skip matching files/dirs (repeatable).")
@click.option("--policy", "policy_file", type=click.Path(dir_okay=False),
              help="Also run the policy checks (PW108, PW109) and honour the policy's exceptions.")
def audit_cmd(paths: tuple[str, ...], live: bool, fmt: str, fail_on: str, excludes: tuple[str, ...],
              policy_file: str | None) -> int:
    """Report network exposure in compose, Quadlet, Kubernetes YAML and shell files (PATHs; default `.`,
    or no files with --live) and, with --live, in Podman's current state.

    Exit: 0 nothing at or above --fail-on, 1 findings, 2 a recognised file could not be read or parsed,
    3 live state could not be read or a rule failed.
    """
    if not paths and not live:
        paths = (".",)
    live_inv: Inventory | None = None
    live_error: InputProblem | None = None
    if live:
        try:
            live_inv = _read_live()
        except PodwallError as exc:
            # Keep the file results, but never let a failed live read pass for a clean host.
            live_error = InputProblem(None, None, None, f"live audit failed: {exc}")
    context = {}
    if policy_file:
        from podwall.policy.load import load_policy

        context["policy"] = load_policy(policy_file)  # an invalid policy is an input error: exit 2
    result = run_audit(list(paths), excludes=excludes, live=live_inv, live_error=live_error, **context)
    if policy_file:
        _apply_exceptions(result, context["policy"].policy.exceptions)
    _print(result, fmt)
    return result.exit_code(Severity(fail_on))


def _apply_exceptions(result: AuditResult, exceptions: object) -> None:
    """Valid policy exceptions suppress live findings of their rule for matching containers."""
    from podwall.audit.rules.pw109_exception import excepted
    from podwall.audit.suppress import Suppressed

    kept = []
    for f in result.findings:
        exc = excepted(f.rule, f.object, exceptions) if f.loc is None else None
        if exc is not None:
            result.suppressed.append(Suppressed(f, f"policy exception: {getattr(exc, 'reason', '')}"))
        else:
            kept.append(f)
    result.findings = kept


def _print(result: AuditResult, fmt: str) -> None:
    if fmt == "json":
        sys.stdout.write(json_report.render(result))
    elif fmt == "sarif":
        sys.stdout.write(sarif.render(result))
    else:
        Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 200).print(
            table.render(result)
        )
        for p in result.all_errors:
            err_console.print(f"[red]error[/red]: {escape(p.render())}")
