"""Shell scripts: `podman run|create|pod create|network create` commands → inventory.

Lines: a finding points at the line of the offending word inside a continued command; a missing setting
points at the command's first line (the line of `podman`).
"""

from __future__ import annotations

import re

from podwall.errors import InputProblem
from podwall.model import Container, Inventory, Loc, Network
from podwall.sources.base import FileResult, SourceKind
from podwall.sources.invocations import ContainerDraft, NetworkDraft
from podwall.sources.podman_args import Invocation, parse_podman_command
from podwall.sources.shellwords import ShellSyntaxError, Word, split_commands, tokenize

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_KEYWORDS = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time", "command", "builtin", "nohup"})
# Wrappers with options that take a value (sudo -u USER podman …).
_WRAPPERS: dict[str, frozenset[str]] = {
    "sudo": frozenset({"-u", "-g", "-C", "-h", "-p", "-U", "-r", "-t", "-T", "-D", "-R"}),
    "doas": frozenset({"-u", "-C"}),
    "exec": frozenset({"-a"}),
    "env": frozenset({"-u", "-C", "-S"}),
    "nice": frozenset({"-n"}),
}


def strip_prefixes(cmd: list[Word]) -> list[Word]:
    """Drop what a shell runs *around* a command: assignments, keywords, sudo/exec/env wrappers."""
    i = 0
    while i < len(cmd):
        t = cmd[i].text
        if t in _KEYWORDS or _ASSIGNMENT.match(t):
            i += 1
        elif t in _WRAPPERS:
            takes_value = _WRAPPERS[t]
            i += 1
            while i < len(cmd) and cmd[i].text.startswith("-") and cmd[i].text != "--":
                i += 2 if cmd[i].text in takes_value else 1
            if i < len(cmd) and cmd[i].text == "--":
                i += 1
        else:
            break
    return cmd[i:]


def invocations(text: str) -> list[Invocation]:
    """Every podman command the shell would run, in file order. Raises ShellSyntaxError."""
    found: list[Invocation] = []
    for stream in tokenize(text):
        for cmd in split_commands(stream):
            inv = parse_podman_command(strip_prefixes(cmd))
            if inv is not None:
                found.append(inv)
    found.sort(key=lambda inv: inv.line)
    return found


def _container(inv: Invocation, path: str, problems: list[InputProblem]) -> Container:
    draft = ContainerDraft()
    draft.apply_container_opts(inv.opts, path, problems)
    name_opt = inv.last("name")
    image = inv.positionals[0].text if inv.positionals else ""
    name = name_opt.value if name_opt and name_opt.value else image or "podman run"
    return Container(name=name, image=image, kind="shell", loc=Loc(path, inv.line), **draft.model_fields())  # type: ignore[arg-type]


def _pod(inv: Invocation, path: str, problems: list[InputProblem]) -> Container:
    draft = ContainerDraft()
    draft.apply_container_opts(inv.opts, path, problems)
    name_opt = inv.last("name")
    name = name_opt.value if name_opt and name_opt.value else (inv.positionals[0].text if inv.positionals else "pod")
    return Container(name=name, kind="shell-pod", infra=True, loc=Loc(path, inv.line), **draft.model_fields())  # type: ignore[arg-type]


def _network(inv: Invocation, path: str) -> Network:
    draft = NetworkDraft()
    draft.apply_network_opts(inv.opts, path)
    name = inv.positionals[0].text if inv.positionals else "(unnamed network)"
    return draft.build(name, "shell", Loc(path, inv.line))


def read_shell(path: str, text: str) -> FileResult:
    try:
        invs = invocations(text)
    except ShellSyntaxError as exc:
        return FileResult(path, SourceKind.SHELL, problems=(InputProblem(path, exc.line, None, f"shell syntax: {exc}"),))
    problems: list[InputProblem] = []
    containers: list[Container] = []
    networks: list[Network] = []
    for inv in invs:
        if inv.what == "container":
            containers.append(_container(inv, path, problems))
        elif inv.what == "pod":
            containers.append(_pod(inv, path, problems))
        else:
            networks.append(_network(inv, path))
    return FileResult(path, SourceKind.SHELL, Inventory(tuple(containers), tuple(networks)), tuple(problems))
