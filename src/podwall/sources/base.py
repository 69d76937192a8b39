"""What readers take and give back."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podwall.errors import InputProblem
from podwall.model import Inventory, Loc


class SourceKind(StrEnum):
    COMPOSE = "compose"
    QUADLET = "quadlet"
    KUBE = "kube"
    SHELL = "shell"


@dataclass(frozen=True)
class SourceFile:
    """A file recognised by `discover`, with its text (and parsed YAML documents, to avoid parsing twice)."""

    path: str
    kind: SourceKind
    text: str
    docs: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class FileResult:
    """One file's objects and the located problems found while reading it.

    Problems do not stop a reader: it keeps what it could read, so one bad port does not hide the rest.
    """

    path: str
    kind: SourceKind | None
    inventory: Inventory = field(default_factory=Inventory)
    problems: tuple[InputProblem, ...] = ()


class LineReader:
    """Base of the YAML readers: where objects come from (`loc`) and the located problems met (`bad`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[InputProblem] = []

    def loc(self, line: int) -> Loc:
        return Loc(self.path, line)

    def bad(self, line: int, message: str) -> None:
        self.problems.append(InputProblem(self.path, line, None, message))


def problem(file: str, line: int | None, message: str, col: int | None = None) -> InputProblem:
    return InputProblem(file=file, line=line, col=col, message=message)
