"""Find and classify the files to audit, then read them.

Recognition, by name first and content second:
- Quadlet: `.container`, `.network`, `.pod`, `.kube`;
- compose: `compose.y*ml`, `compose.*.y*ml`, `docker-compose*.y*ml`, `podman-compose*.y*ml`, or any YAML whose
  top level has a `services:` mapping;
- Kubernetes: YAML with a document holding `apiVersion` and `kind`;
- shell: `.sh`/`.bash`, or a shebang naming a shell.

Only recognised files can be errors. Unrelated YAML (CI configs, Helm templates that do not parse) is skipped.
A YAML file that does not parse counts as recognised when its text plainly is compose or Kubernetes.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

from podwall.errors import InputProblem
from podwall.sources.base import FileResult, SourceFile, SourceKind
from podwall.sources.compose import read_compose
from podwall.sources.kube import is_kube_document, read_kube
from podwall.sources.quadlet import EXTENSIONS as QUADLET_EXTENSIONS
from podwall.sources.quadlet import read_quadlets
from podwall.sources.shell import read_shell
from podwall.sources.yamlload import YamlParseError, is_map, load_documents

SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox", ".mypy_cache", ".hg", ".svn"})
COMPOSE_NAMES = ("compose.y*ml", "compose.*.y*ml", "docker-compose*.y*ml", "podman-compose*.y*ml")
_SHEBANG = re.compile(rb"^#![^\n]*\b(sh|bash|dash|ksh|zsh|ash|mksh)\b")
_LOOKS_COMPOSE = re.compile(r"^services:[ \t]*(#.*)?\n([ \t]*(#.*)?\n)*[ \t]+[\w.-]+[ \t]*:", re.MULTILINE)
_LOOKS_KUBE = re.compile(r"^apiVersion:[ \t]*\S", re.MULTILINE)
_LOOKS_KUBE_KIND = re.compile(r"^kind:[ \t]*\S", re.MULTILINE)
_TEMPLATE = "{{"


@dataclass
class Discovery:
    files: list[SourceFile] = field(default_factory=list)
    problems: list[InputProblem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # looked at, not ours


def _excluded(path: str, root: str, patterns: Sequence[str]) -> bool:
    if not patterns:
        return False
    rel = os.path.relpath(path, root) if root else path
    names = {PurePath(path).as_posix(), PurePath(rel).as_posix(), PurePath(path).name}
    return any(fnmatch.fnmatchcase(n, pat.rstrip("/")) for pat in patterns for n in names)


def _is_virtualenv(dirpath: str) -> bool:
    return os.path.isfile(os.path.join(dirpath, "pyvenv.cfg"))


def _read(path: str, problems: list[InputProblem]) -> str | None:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        problems.append(InputProblem(path, None, None, f"cannot read: {exc.strerror or exc}"))
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        problems.append(InputProblem(path, line, None, "not valid UTF-8 text"))
        return None


def _head(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(256)
    except OSError:
        return b""


def _classify_yaml(path: str, text: str, by_name: bool, problems: list[InputProblem]) -> SourceFile | None:
    try:
        docs: tuple[Any, ...] = load_documents(text, path)
    except YamlParseError as exc:
        if by_name:
            problems.append(exc.problem)
        elif _TEMPLATE in text:
            return None  # a Helm/Go template: not a file anyone runs as is
        elif _LOOKS_COMPOSE.search(text) or (_LOOKS_KUBE.search(text) and _LOOKS_KUBE_KIND.search(text)):
            problems.append(exc.problem)
        return None
    if by_name:
        return SourceFile(path, SourceKind.COMPOSE, text, docs)
    first = next((d for d in docs if d is not None), None)
    if is_map(first) and is_map(first.get("services")):
        return SourceFile(path, SourceKind.COMPOSE, text, docs)
    if any(is_kube_document(d) for d in docs):
        return SourceFile(path, SourceKind.KUBE, text, docs)
    return None


def classify(path: str, problems: list[InputProblem]) -> SourceFile | None:
    """A SourceFile when `path` is something podwall audits; problems for recognised files it cannot read."""
    p = PurePath(path)
    name = p.name.lower()
    suffix = p.suffix.lower()
    if suffix in QUADLET_EXTENSIONS:
        text = _read(path, problems)
        return None if text is None else SourceFile(path, SourceKind.QUADLET, text)
    by_name = any(fnmatch.fnmatchcase(name, pat) for pat in COMPOSE_NAMES)
    if by_name or suffix in (".yml", ".yaml"):
        if by_name:
            text = _read(path, problems)
        else:
            scratch: list[InputProblem] = []  # unreadable unrelated YAML is still unrelated
            text = _read(path, scratch)
        return None if text is None else _classify_yaml(path, text, by_name, problems)
    if suffix in (".sh", ".bash") or _SHEBANG.match(_head(path)):
        text = _read(path, problems)
        return None if text is None else SourceFile(path, SourceKind.SHELL, text)
    return None


def discover(paths: Sequence[str], excludes: Sequence[str] = ()) -> Discovery:
    found = Discovery()
    seen: set[str] = set()

    def consider(path: str, root: str) -> None:
        key = os.path.realpath(path)
        if key in seen or _excluded(path, root, excludes):
            return
        seen.add(key)
        sf = classify(path, found.problems)
        if sf is None:
            found.skipped.append(path)
        else:
            found.files.append(sf)

    for given in paths:
        if os.path.isdir(given):
            for dirpath, dirnames, filenames in os.walk(given):
                dirnames[:] = sorted(
                    d
                    for d in dirnames
                    if d not in SKIP_DIRS
                    and not _is_virtualenv(os.path.join(dirpath, d))
                    and not _excluded(os.path.join(dirpath, d), given, excludes)
                )
                for fn in sorted(filenames):
                    full = os.path.join(dirpath, fn)
                    if os.path.isfile(full):
                        consider(full, given)
        elif os.path.exists(given):
            consider(given, os.path.dirname(given))
        else:
            found.problems.append(InputProblem(given, None, None, "no such file or directory"))
    return found


def read_all(files: Iterable[SourceFile]) -> tuple[list[FileResult], list[InputProblem]]:
    """Read every recognised file: (results, internal errors).

    Quadlet units are read together so that unit references resolve. A reader that crashes is a podwall
    bug: it is reported as an internal error for that file (exit 3), never taken for a clean file, and the
    other files are still read.
    """
    files = list(files)
    internal: list[InputProblem] = []
    quadlets = [f for f in files if f.kind is SourceKind.QUADLET]
    by_path: dict[str, FileResult] = {}
    if quadlets:
        try:
            by_path = {r.path: r for r in read_quadlets(quadlets)}
        except Exception as exc:  # noqa: BLE001 - reported, see docstring
            internal.extend(_crash(f.path, exc) for f in quadlets)
    results: list[FileResult] = []
    for f in files:
        try:
            if f.kind is SourceKind.QUADLET:
                if f.path in by_path:
                    results.append(by_path[f.path])
            elif f.kind is SourceKind.COMPOSE:
                results.append(read_compose(f.path, f.text, f.docs))
            elif f.kind is SourceKind.KUBE:
                results.append(read_kube(f.path, f.text, f.docs))
            else:
                results.append(read_shell(f.path, f.text))
        except Exception as exc:  # noqa: BLE001 - reported, see docstring
            internal.append(_crash(f.path, exc))
    return results, internal


def _crash(path: str, exc: Exception) -> InputProblem:
    return InputProblem(path, None, None, f"internal error while reading ({type(exc).__name__}: {exc}); please report it")
