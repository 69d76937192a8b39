"""Quadlet units (`.container`, `.network`, `.pod`, `.kube`) → inventory.

Parsed here rather than by Podman: Podman 4.3 has no Quadlet. The INI dialect is systemd's: `#` and `;`
comments, a trailing `\\` continues a value on the next line (comment lines inside a continuation are
skipped), keys repeat, and an empty assignment (`Network=`) resets a list key.

Names follow Quadlet: `web.container` runs container `systemd-web` unless `ContainerName=`; `Network=db.network`
means network `systemd-db` unless that unit sets `NetworkName=` (same for `Pod=`/`PodName=`). References are
resolved against the other units being read, same directory first.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath

from podwall.errors import InputProblem
from podwall.model import Container, Inventory, Loc, Network
from podwall.sources.base import FileResult, SourceFile, SourceKind
from podwall.sources.invocations import ContainerDraft, NetworkDraft
from podwall.sources.podman_args import parse_container_args, parse_network_args, parse_pod_args
from podwall.sources.shellwords import ShellSyntaxError, Word, tokenize

EXTENSIONS = {".container": "Container", ".network": "Network", ".pod": "Pod", ".kube": "Kube"}
_BOOL_TRUE = frozenset({"1", "yes", "true", "on"})
_LIST_KEYS = frozenset({"Network", "PublishPort", "AddCapability", "PodmanArgs", "Options", "Subnet"})


@dataclass(frozen=True)
class Entry:
    key: str
    value: str
    line: int  # line of the key
    segments: tuple[tuple[str, int], ...]  # (text, physical line) of each continued piece


@dataclass
class Unit:
    path: str
    sections: dict[str, list[Entry]] = field(default_factory=dict)
    headers: dict[str, int] = field(default_factory=dict)

    def entries(self, section: str, key: str) -> list[Entry]:
        """Values of a key in order; an empty assignment of a list key drops what came before."""
        out: list[Entry] = []
        for e in self.sections.get(section, []):
            if e.key == key:
                if e.value == "" and key in _LIST_KEYS:
                    out = []
                else:
                    out.append(e)
        return out

    def last(self, section: str, key: str) -> Entry | None:
        found = [e for e in self.sections.get(section, []) if e.key == key]
        return found[-1] if found else None


def parse_unit(path: str, text: str) -> tuple[Unit, list[InputProblem]]:
    unit = Unit(path)
    problems: list[InputProblem] = []
    section: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        lineno = i + 1
        i += 1
        s = raw.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("["):
            if not s.endswith("]") or len(s) < 3:
                problems.append(InputProblem(path, lineno, None, f"invalid section header {s!r}"))
                section = None
                continue
            section = s[1:-1]
            unit.sections.setdefault(section, [])
            unit.headers.setdefault(section, lineno)
            continue
        if "=" not in s:
            problems.append(InputProblem(path, lineno, None, f"expected KEY=VALUE, got {s!r}"))
            continue
        key, _, first = s.partition("=")
        segments = [(first.strip(), lineno)]
        while segments[-1][0].endswith("\\"):
            segments[-1] = (segments[-1][0][:-1].rstrip(), segments[-1][1])
            while i < len(lines) and lines[i].strip()[:1] in ("#", ";"):
                i += 1  # systemd skips comment lines inside a continuation
            if i >= len(lines):
                break
            segments.append((lines[i].strip(), i + 1))
            i += 1
        if section is None:
            problems.append(InputProblem(path, lineno, None, f"{key.strip()}= outside of any [section]"))
            continue
        value = " ".join(t for t, _ in segments if t)
        unit.sections[section].append(Entry(key.strip(), value, lineno, tuple(segments)))
    return unit, problems


def _words(entry: Entry) -> list[Word]:
    """PodmanArgs= split like Quadlet does (quotes, escapes), each word with its physical line."""
    # systemd turns each continuation into a space; one `\`-newline per physical line skipped (comments
    # inside the continuation) keeps the tokenizer's line count equal to the file's.
    parts: list[str] = []
    prev = entry.segments[0][1]
    for text, line in entry.segments:
        parts.append(" \\\n" * (line - prev) + text)
        prev = line
    return tokenize(" ".join(parts), first_line=entry.segments[0][1], shell=False)[0]


def _is_true(entry: Entry | None) -> bool:
    return entry is not None and entry.value.strip().lower() in _BOOL_TRUE


class QuadletSet:
    """All units being read together, so that `X.network` / `X.pod` / `X.container` resolve."""

    def __init__(self, files: Iterable[SourceFile]):
        self.units: dict[str, Unit] = {}
        self.problems: dict[str, list[InputProblem]] = {}
        for f in files:
            unit, problems = parse_unit(f.path, f.text)
            self.units[f.path] = unit
            self.problems[f.path] = problems

    def _find(self, ref: str, near: str) -> Unit | None:
        same_dir = str(PurePath(near).parent / ref)
        if same_dir in self.units:
            return self.units[same_dir]
        return next((u for p, u in self.units.items() if PurePath(p).name == ref), None)

    def name_of(self, ref: str, near: str) -> str:
        """Podman's name for a unit reference (`db.network` → `systemd-db` or its NetworkName=)."""
        ref = ref.strip()
        suffix = PurePath(ref).suffix
        if suffix not in EXTENSIONS:
            return ref
        section = EXTENSIONS[suffix]
        key = {"Container": "ContainerName", "Network": "NetworkName", "Pod": "PodName"}.get(section)
        unit = self._find(ref, near)
        if unit is not None and key is not None:
            named = unit.last(section, key)
            if named is not None and named.value:
                return named.value
        return f"systemd-{PurePath(ref).stem}"

    # -- objects ------------------------------------------------------------------------------------
    def _draft(self, unit: Unit, section: str, problems: list[InputProblem]) -> ContainerDraft:
        path = unit.path
        draft = ContainerDraft()
        for e in unit.entries(section, "Network"):
            draft.net.add(e.value, Loc(path, e.line), lambda r: self.name_of(r, path))
        for e in unit.entries(section, "PublishPort"):
            draft.add_port(e.value, Loc(path, e.line), problems)
        for e in unit.entries(section, "AddCapability"):
            draft.add_caps(e.value, Loc(path, e.line), sep=" ")
        pod = unit.last(section, "Pod")
        if pod is not None and pod.value:
            draft.set_pod(self.name_of(pod.value, path), Loc(path, pod.line))
        for e in unit.entries(section, "PodmanArgs"):
            words = self._args(e, path, problems)
            opts = parse_pod_args(words) if section == "Pod" else parse_container_args(words)
            draft.apply_container_opts(opts, path, problems, lambda r: self.name_of(r, path), lambda r: self.name_of(r, path))
        return draft

    @staticmethod
    def _args(e: Entry, path: str, problems: list[InputProblem]) -> list[Word]:
        try:
            return _words(e)
        except ShellSyntaxError as exc:
            problems.append(InputProblem(path, exc.line, None, f"{e.key}=: {exc}"))
            return []

    def read(self, path: str) -> FileResult:
        unit = self.units[path]
        problems = list(self.problems[path])
        suffix = PurePath(path).suffix
        section = EXTENSIONS[suffix]
        if section not in unit.sections:
            problems.append(InputProblem(path, 1, None, f"no [{section}] section in a {suffix} unit"))
            return FileResult(path, SourceKind.QUADLET, problems=tuple(problems))
        header = Loc(path, unit.headers[section])
        containers: tuple[Container, ...] = ()
        networks: tuple[Network, ...] = ()
        if section == "Network":
            networks = (self._network(unit, header, problems),)
        else:
            draft = self._draft(unit, section, problems)
            stem = PurePath(path).stem
            if section == "Container":
                named = unit.last(section, "ContainerName")
                image = unit.last(section, "Image")
                containers = (
                    Container(
                        name=named.value if named and named.value else f"systemd-{stem}",
                        image=image.value if image else "",
                        kind="quadlet",
                        loc=header,
                        **draft.model_fields(),  # type: ignore[arg-type]
                    ),
                )
            else:
                name = self.name_of(PurePath(path).name, path) if section == "Pod" else stem
                kind = "quadlet-pod" if section == "Pod" else "quadlet-kube"
                containers = (Container(name=name, kind=kind, infra=True, loc=header, **draft.model_fields()),)  # type: ignore[arg-type]
        return FileResult(path, SourceKind.QUADLET, Inventory(containers, networks), tuple(problems))

    def _network(self, unit: Unit, header: Loc, problems: list[InputProblem]) -> Network:
        path = unit.path
        draft = NetworkDraft()
        driver = unit.last("Network", "Driver")
        if driver is not None and driver.value:
            draft.driver = driver.value.strip().lower()
            draft.locs["driver"] = Loc(path, driver.line)
        internal = unit.last("Network", "Internal")
        if internal is not None:
            draft.internal = _is_true(internal)
            draft.locs["internal"] = Loc(path, internal.line)
        for e in unit.entries("Network", "Options"):
            draft.add_option(e.value, Loc(path, e.line))
        for e in unit.entries("Network", "Subnet"):
            draft.add_subnet(e.value)
        draft.ipv6 = _is_true(unit.last("Network", "IPv6"))
        draft.dns_enabled = not _is_true(unit.last("Network", "DisableDNS"))
        for e in unit.entries("Network", "PodmanArgs"):
            draft.apply_network_opts(parse_network_args(self._args(e, path, problems)), path)
        return draft.build(self.name_of(PurePath(path).name, path), "quadlet", header)


def read_quadlets(files: Iterable[SourceFile]) -> list[FileResult]:
    files = list(files)
    qs = QuadletSet(files)
    return [qs.read(f.path) for f in files]
