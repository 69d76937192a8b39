"""`podwall plan | apply | status | reset | schema`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from podwall.cli import cli
from podwall.errors import EnvironmentProblem, InputError, InputProblem
from podwall.exitcodes import RC

out = Console(highlight=False, soft_wrap=True)


def _policy_option(f: Any) -> Any:
    return click.option(
        "-f", "--file", "policy_file", required=True, type=click.Path(dir_okay=False), help="Policy YAML file"
    )(f)


def _load(path: str) -> Any:
    from podwall.policy.load import load_policy

    return load_policy(path)


def print_plan(plan: Any, show_ruleset: bool) -> None:
    r = plan.resolved
    lp = plan.loaded
    out.print(f"[bold]policy[/bold] {escape(lp.path)}  sha256 {lp.short_hash}  mode [bold]{r.policy.mode}[/bold]")
    if plan.to_create:
        for n in plan.to_create:
            spec = r.policy.networks[n]
            extra = [*map(str, spec.cidrs), *(["internal"] if spec.internal else [])]
            extra += ["isolate=strict"] if spec.isolate == "strict" else []
            out.print(f"[green]+ create network[/green] {escape(n)} {escape(' '.join(extra))}")
    for d in plan.drift:
        colour = "red" if d.weakens else "yellow"
        out.print(f"[{colour}]! network {escape(d.network)}[/{colour}]: {escape(d.message)}")
    t = Table(title="workloads", show_lines=False, title_justify="left")
    t.add_column("workload")
    t.add_column("containers")
    for w, cs in r.members.items():
        t.add_row(escape(w), escape(", ".join(cs)) or "[dim](none running)[/dim]")
    out.print(t)
    if r.unmatched:
        out.print(f"[yellow]unmatched (PW108, all new connections denied):[/yellow] {escape(', '.join(r.unmatched))}")
    for c, why in r.unenforceable:
        out.print(f"[red]not enforceable:[/red] {escape(c)}: {escape(why)}")
    for g in plan.ingress:
        out.print(
            f"world ingress (flow {g.flow}): host {escape(g.host_ip)}:{g.host_port or '?'}/{g.protocol} → "
            f"{escape(g.container)}:{g.container_port} ({escape(g.workload)})"
        )
    for w in plan.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(w)}")
    rs = plan.ruleset
    sizes = ", ".join(f"{k} {len(v)}" for k, v in sorted(rs.maps.items()) if v) or "no elements"
    out.print(
        f"ruleset: table inet podwall, {rs.flow_count} flows → {rs.element_count} map elements ({sizes}); "
        f"{len(rs.sets['managed_ifaces'])} managed bridges, "
        f"{len(rs.sets['managed4']) + len(rs.sets['managed6'])} managed addresses"
    )
    if show_ruleset:
        out.print(rs.table, markup=False)


@click.command()
@_policy_option
@click.option("--show-ruleset", is_flag=True, help="Print the nft table that apply would load")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def plan(policy_file: str, show_ruleset: bool, fmt: str) -> int:
    """Show what apply would do, without changing anything."""
    from podwall.enforce import make_plan
    from podwall.podman.live import read_inventory

    loaded = _load(policy_file)
    p = make_plan(loaded, read_inventory())
    if fmt == "json":
        data = p.to_json()
        if show_ruleset:
            data["ruleset"]["text"] = p.ruleset.table
        click.echo(json.dumps(data, indent=2))
    else:
        print_plan(p, show_ruleset)
    return RC.OK


def preflight(enable_br_netfilter: bool) -> None:
    """Refuse early, with a clear message, where enforcement would be silently incomplete."""
    import os

    from podwall import host
    from podwall.podman.networks import is_rootless

    if os.geteuid() != 0 or is_rootless():
        raise EnvironmentProblem(
            "rootless Podman is not supported yet: its networks live in the rootless network namespace. "
            "Run podwall as root for rootful containers."
        )
    status = host.br_netfilter_status()
    if not status.active:
        if not enable_br_netfilter:
            raise EnvironmentProblem(
                "same-bridge traffic is invisible to nftables: br_netfilter is off "
                f"({status.describe()}). Enable it with `podwall apply --enable-br-netfilter` or "
                "`podwall doctor --fix` (affects every bridge on this host; persisted in /etc)."
            )
        for line in host.enable_br_netfilter():
            out.print(f"[yellow]host change:[/yellow] {escape(line)}")


@click.command()
@_policy_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation")
@click.option("--force", is_flag=True, help="Apply even if existing networks are weaker than the policy")
@click.option("--enable-br-netfilter", is_flag=True, help="Turn on and persist br_netfilter if it is off")
def apply(policy_file: str, yes: bool, force: bool, enable_br_netfilter: bool) -> int:
    """Create missing networks and load the policy into `table inet podwall` atomically."""
    from podwall import enforce
    from podwall.podman.live import read_inventory

    loaded = _load(policy_file)
    if not yes:
        if not sys.stdin.isatty():
            raise InputError(InputProblem(None, None, None, "apply needs --yes when not run from a terminal"))
        print_plan(enforce.make_plan(loaded, read_inventory()), False)
        click.confirm("apply this policy?", abort=True)
    preflight(enable_br_netfilter)
    with enforce.lock():
        result = enforce.apply(loaded, enforce.live_environment(), force=force)
    p, cut, created = result.plan, result.cut, result.created
    for w in result.warnings:
        out.print(f"[yellow]warning:[/yellow] {escape(w)}")
    for n in created:
        out.print(f"created network {escape(n)}")
    rs = p.ruleset
    out.print(
        f"applied {escape(loaded.path)} (sha256 {loaded.short_hash}, mode {p.resolved.policy.mode}): "
        f"{rs.flow_count} flows, {rs.element_count} elements; {cut} connection(s) cut"
    )
    for c, why in p.resolved.unenforceable:
        out.print(f"[red]not enforceable:[/red] {escape(c)}: {escape(why)}")
    return RC.OK


def _file_changed(path: str | None, sha256: str | None) -> bool | None:
    """Has the policy file changed since it was applied? None when it cannot be read."""
    import hashlib

    if not path or not sha256:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest() != sha256
    except OSError:
        return None


def status_data() -> dict[str, Any]:
    from podwall.enforce import State
    from podwall.nft.live import Nft

    nft = Nft()
    state = State.load()
    snap = nft.snapshot()
    data: dict[str, Any] = {
        "loaded": snap is not None,
        "policy_file": state.policy_file if state else None,
        "sha256": state.sha256 if state else None,
        "mode": state.mode if state else None,
        "applied_at": state.applied_at if state else None,
        "drifted": bool(snap is not None and (state is None or state.snapshot != snap)),
        "policy_file_changed": _file_changed(state.policy_file, state.sha256) if state else None,
        "flows": [],
        "denied": 0,
        "denied_pairs": [],
    }
    if snap is not None:
        listing = nft.list_json()  # one listing for both the counters and the learnt pairs
        counters, denied = nft.flow_counters(listing)  # summed over the elements loaded now
        names = state.flows if state else []
        packets = {c.flow: c.packets for c in counters}
        data["flows"] = [
            {"flow": f, "desc": names[f] if f < len(names) else "?", "packets": packets.get(f, 0)}
            for f in sorted(set(range(len(names))) | set(packets))
        ]
        data["denied"] = denied
        data["denied_pairs"] = [{"from": s, "to": d, "packets": n} for s, d, n in nft.denied_pairs(listing)]
    return data


def _label_pairs(pairs: list[dict[str, Any]], policy_file: str | None) -> list[dict[str, Any]]:
    """Map denied address pairs to workloads (the per-workload-pair counters of audit mode)."""
    if not pairs or not policy_file:
        return []
    import ipaddress

    from podwall.podman.live import read_inventory
    from podwall.policy.semantics import resolve

    try:
        res = resolve(_load(policy_file).policy, read_inventory())
    except (InputError, EnvironmentProblem):
        return []
    label = {a: ep.label for ep in res.endpoints for a in ep.addresses}
    agg: dict[tuple[str, str], int] = {}
    for p in pairs:
        s = label.get(ipaddress.ip_address(p["from"]), "other")
        d = label.get(ipaddress.ip_address(p["to"]), "host/other")
        agg[(s, d)] = agg.get((s, d), 0) + int(p["packets"])
    return [{"from": s, "to": d, "packets": n} for (s, d), n in sorted(agg.items())]


@click.command()
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
def status(fmt: str) -> int:
    """What is loaded, from which policy, since when, and its counters. Exit 1 if missing or drifted."""
    data = status_data()
    data["denied_workload_pairs"] = _label_pairs(data["denied_pairs"], data["policy_file"])
    from podwall import host

    br = host.br_netfilter_status()
    data["br_netfilter"] = br.active  # off: same-bridge traffic no longer reaches the table
    rc = RC.OK if data["loaded"] and not data["drifted"] and br.active else RC.FINDINGS
    if fmt == "json":
        click.echo(json.dumps(data, indent=2))
        return rc
    if not data["loaded"]:
        out.print("[red]table inet podwall is not loaded[/red]")
        if data["policy_file"]:
            out.print(f"last applied: {escape(data['policy_file'])} at {data['applied_at']}")
        return rc
    state = "[red]DRIFTED[/red] (differs from what podwall loaded)" if data["drifted"] else "[green]in sync[/green]"
    out.print(f"table inet podwall: loaded, {state}")
    if not data["br_netfilter"]:
        out.print("[red]br_netfilter is off[/red]: same-bridge traffic bypasses the table (podwall doctor --fix)")
    out.print(
        f"policy {escape(str(data['policy_file']))} sha256 {str(data['sha256'])[:12]} mode {data['mode']} "
        f"applied {data['applied_at']}"
    )
    if data["policy_file_changed"]:
        out.print("note: the policy file has changed since it was applied (podwall plan -f FILE, then apply)")
    t = Table(title="accepted new connections per flow (flows numbered from 0 in file order)", title_justify="left")
    t.add_column("#", justify="right")
    t.add_column("flow")
    t.add_column("packets", justify="right")
    for f in data["flows"]:
        t.add_row(str(f["flow"]), escape(f["desc"]), str(f["packets"]))
    out.print(t)
    out.print(f"denied (or, in audit mode, would-be denied) packets: {data['denied']}")
    for p in data["denied_workload_pairs"]:
        out.print(f"  {escape(p['from'])} → {escape(p['to'])}: {p['packets']}")
    return rc


@click.command()
def reset() -> int:
    """Remove podwall's table (nothing else). Networks are left as they are."""
    from podwall import enforce
    from podwall.nft.live import Nft

    with enforce.lock():
        removed = enforce.reset(Nft())
    out.print("removed table inet podwall" if removed else "table inet podwall was not loaded")
    return RC.OK


@click.command()
def schema() -> int:
    """Print the policy's JSON Schema (for editors)."""
    from podwall.policy.schema import json_schema

    click.echo(json.dumps(json_schema(), indent=2))
    return RC.OK


for _cmd in (plan, apply, status, reset, schema):
    cli.add_command(_cmd)
