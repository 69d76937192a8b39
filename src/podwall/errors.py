"""Exception types. Library code raises these; only the CLI prints and exits."""

from __future__ import annotations

from dataclasses import dataclass

from podwall.exitcodes import RC


class PodwallError(Exception):
    """Base class; `rc` is the exit code the CLI uses for it."""

    rc: RC = RC.ENVIRONMENT


@dataclass(frozen=True)
class InputProblem:
    """One located problem in an input file: rendered as FILE:LINE:COL: PATH: MESSAGE."""

    file: str | None
    line: int | None
    col: int | None
    message: str
    path: str = ""

    def render(self) -> str:
        where = self.file or "<input>"
        if self.line is not None:
            where += f":{self.line}"
            if self.col is not None:
                where += f":{self.col}"
        prefix = f"{self.path}: " if self.path else ""
        return f"{where}: {prefix}{self.message}"


class InputError(PodwallError):
    """Invalid user input (policy, scanned file). Carries every problem found, not just the first."""

    rc = RC.INVALID_INPUT

    def __init__(self, problems: list[InputProblem] | InputProblem):
        self.problems = problems if isinstance(problems, list) else [problems]
        super().__init__("\n".join(p.render() for p in self.problems))


class EnvironmentProblem(PodwallError):
    """The host cannot do what was asked: podman or nft missing/failing, no br_netfilter, rootless, ..."""

    rc = RC.ENVIRONMENT


class CommandFailed(EnvironmentProblem):
    def __init__(self, argv: list[str], returncode: int, stderr: str):
        self.argv = argv
        self.returncode = returncode
        self.stderr = stderr
        super().__init__(f"{' '.join(argv[:3])} … failed (exit {returncode}): {stderr.strip()[:2000]}")
