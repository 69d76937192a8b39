"""`podwall watch`: keep the policy enforced as containers come and go (the event-driven daemon)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import click

from podwall.cli import cli
from podwall.errors import InputError, InputProblem
from podwall.exitcodes import RC


def parse_listen(value: str) -> tuple[str, int] | None:
    """ "HOST:PORT" or "[V6]:PORT"; "" or "off" disables the endpoint."""
    if value in ("", "off", "none"):
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    try:
        ipaddress.ip_address(host)
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError
    except ValueError:
        raise InputError(
            InputProblem(
                None, None, None, f"--metrics {value!r}: expected ADDRESS:PORT, for example 127.0.0.1:9469"
            )
        ) from None
    return host, int(port)


@click.command()
@click.option(
    "-f", "--file", "policy_file", required=True, type=click.Path(dir_okay=False), help="Policy YAML file"
)
@click.option(
    "--metrics",
    "metrics_addr",
    default="127.0.0.1:9469",
    show_default=True,
    help="Prometheus endpoint ADDRESS:PORT ('off' to disable)",
)
@click.option(
    "--resync-seconds",
    type=click.FloatRange(min=1.0),
    default=30.0,
    show_default=True,
    help="Full resync interval (also after every reconnect of the event stream)",
)
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--force", is_flag=True, help="Apply even if existing networks are weaker than the policy")
@click.option("--enable-br-netfilter", is_flag=True, help="Turn on and persist br_netfilter if it is off")
@click.option(
    "--events-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="Podman's events log to follow with inotify (default: Podman's, when it logs to a file)",
)
def watch(
    policy_file: str,
    metrics_addr: str,
    resync_seconds: float,
    log_format: str,
    force: bool,
    enable_br_netfilter: bool,
    events_file: str | None,
) -> int:
    """Apply the policy, then follow Podman events and keep `table inet podwall` enforced.

    SIGHUP reloads the policy file (an invalid file is refused, the old policy stays); SIGTERM stops and
    leaves the table in place. Run it as a systemd service: see docs/watch.md.
    """
    from podwall import enforce
    from podwall.cli.policy import preflight
    from podwall.policy.load import load_policy
    from podwall.watch.run import run_daemon

    listen = parse_listen(metrics_addr)
    loaded = load_policy(policy_file)
    preflight(enable_br_netfilter)
    with enforce.lock():
        run_daemon(
            loaded,
            policy_file=policy_file,
            listen=listen,
            resync_seconds=resync_seconds,
            log_format=log_format,
            force=force,
            events_file=Path(events_file) if events_file else None,
        )
    return RC.OK


cli.add_command(watch)
