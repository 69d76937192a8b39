"""The command line: parse, wire, print, exit. Nothing else lives here.

Each command group sits in its own module; `main()` turns podwall's exceptions into exit codes.
"""

from __future__ import annotations

import importlib
import os
import sys

import click
from rich.console import Console
from rich.markup import escape

from podwall import __version__
from podwall.errors import InputError, PodwallError
from podwall.exitcodes import RC

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Modules that add commands to `cli`. Each calls `cli.add_command(...)` at import.
COMMAND_MODULES: tuple[str, ...] = ("policy", "verify", "doctor", "audit", "demo", "watch")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="podwall")
def cli() -> None:
    """podwall: isolate Podman container networks as code.

    audit → policy (plan/apply) → verify → watch.
    """


def _load_commands() -> None:
    for name in COMMAND_MODULES:
        importlib.import_module(f"podwall.cli.{name}")


def main(argv: list[str] | None = None) -> None:
    _load_commands()
    try:
        rc = cli.main(args=argv, prog_name="podwall", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(RC.INVALID_INPUT)
    except click.ClickException as exc:
        exc.show()
        sys.exit(RC.INVALID_INPUT)
    except InputError as exc:
        for p in exc.problems:
            err_console.print(f"[red]error[/red]: {escape(p.render())}")
        sys.exit(exc.rc)
    except PodwallError as exc:
        err_console.print(f"[red]error[/red]: {escape(str(exc))}")
        sys.exit(exc.rc)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, never pretend success
        if os.environ.get("PODWALL_DEBUG"):
            raise
        err_console.print(
            f"[red]internal error[/red]: {escape(type(exc).__name__ + ': ' + str(exc))} (PODWALL_DEBUG=1 for a traceback)"
        )
        sys.exit(RC.ENVIRONMENT)
    sys.exit(int(rc or 0))
