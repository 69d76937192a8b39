from click.testing import CliRunner

from podwall.cli import _load_commands, cli
from podwall.exitcodes import RC, worst


def test_version_and_help() -> None:
    _load_commands()
    r = CliRunner().invoke(cli, ["--version"])
    assert r.exit_code == 0 and "podwall" in r.output


def test_worst_exit_code_wins() -> None:
    assert worst(RC.OK, RC.FINDINGS, RC.INVALID_INPUT) == 2
    assert worst() == 0
