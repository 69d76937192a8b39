"""Exit codes, in one place. When several apply, the highest wins (see worst())."""

from enum import IntEnum


class RC(IntEnum):
    OK = 0
    FINDINGS = 1  # findings at/above --fail-on, isolation violated, table missing/drifted
    INVALID_INPUT = 2  # policy or file errors, verify with zero probed cells, apply without --yes and no TTY
    ENVIRONMENT = 3  # podman/nft missing or failing, network creation failed, apply failed


def worst(*codes: int) -> int:
    return max((int(c) for c in codes), default=int(RC.OK))
