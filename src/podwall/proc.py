"""The one place podwall runs other programs. Argument lists only, never a shell."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from typing import Any

from podwall.errors import CommandFailed, EnvironmentProblem


def which(name: str) -> str | None:
    return shutil.which(name) or next(
        (p for d in ("/usr/sbin", "/sbin", "/usr/bin") if (p := shutil.which(name, path=d))), None
    )


def run(
    argv: Sequence[str],
    *,
    input: str | bytes | None = None,
    check: bool = True,
    timeout: float | None = 120,
) -> subprocess.CompletedProcess[Any]:
    """Run argv; raise EnvironmentProblem when the program is missing, CommandFailed when it fails."""
    argv = list(argv)
    exe = which(argv[0])
    if exe is None:
        raise EnvironmentProblem(f"{argv[0]} is not installed (or not on PATH)")
    try:
        cp = subprocess.run(
            [exe, *argv[1:]], input=input, capture_output=True, text=not isinstance(input, bytes), timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise EnvironmentProblem(f"{argv[0]} timed out after {timeout}s") from exc
    if check and cp.returncode != 0:
        err = cp.stderr or cp.stdout
        raise CommandFailed(argv, cp.returncode, err.decode(errors="replace") if isinstance(err, bytes) else err)
    return cp
