"""The connectivity matrix of `podwall verify`: pure formatters over (expected cell, observed result) pairs.

No I/O here: every function returns a string or a rich renderable, and the CLI prints it.

A cell is *correct* when it was probed and the observed verdict is the expected one, *wrong* when it was
probed and differs, and *not probed* otherwise (no source namespace, `world` without --world-netns, or an
error before any packet left). A not-probed cell never counts as correct.
"""

from __future__ import annotations

import io
import ipaddress
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from podwall.cells import Cell, ProbeResult, Verdict
from podwall.exitcodes import RC

Pair = tuple[Cell, ProbeResult]


class Mark(StrEnum):
    """What one matrix position shows. Worst first: a position holding several cells shows the worst."""

    LEAK = "X↑"  # observed allow, expected block: the dangerous direction
    MISSING = "X↓"  # observed block, expected allow: a broken flow
    NOT_PROBED = "-"
    INFERRED = "~"  # expected block, and a UDP probe got no answer: consistent, but not proven
    OK = "."


_SEVERITY = {m: i for i, m in enumerate(Mark)}
_STYLE = {
    Mark.LEAK: "bold red",
    Mark.MISSING: "bold yellow",
    Mark.NOT_PROBED: "dim",
    Mark.INFERRED: "cyan",
    Mark.OK: "green",
}
LEGEND = (
    ". as expected   ~ block inferred (UDP, no answer)   "
    "X↑ allowed, expected blocked   X↓ blocked, expected allowed   - not probed"
)


def mark(cell: Cell, res: ProbeResult) -> Mark:
    if res.verdict is None:
        return Mark.NOT_PROBED
    if res.verdict != cell.expected:
        return Mark.LEAK if res.verdict == Verdict.ALLOW else Mark.MISSING
    return Mark.INFERRED if res.detail == "inferred" else Mark.OK


@dataclass(frozen=True)
class Summary:
    correct: int
    wrong: int
    not_probed: int
    inferred: int  # among `correct`: expected-block UDP cells that only got silence

    @property
    def line(self) -> str:
        text = f"{self.correct} correct, {self.wrong} wrong"
        return text + (f", {self.not_probed} not probed" if self.not_probed else "")

    @property
    def rc(self) -> RC:
        """1 when anything is wrong; 2 when nothing at all could be probed (proves nothing); else 0."""
        if self.wrong:
            return RC.FINDINGS
        if self.correct == 0:
            return RC.INVALID_INPUT
        return RC.OK


def summarize(pairs: Sequence[Pair]) -> Summary:
    marks = [mark(c, r) for c, r in pairs]
    return Summary(
        correct=sum(m in (Mark.OK, Mark.INFERRED) for m in marks),
        wrong=sum(m in (Mark.LEAK, Mark.MISSING) for m in marks),
        not_probed=marks.count(Mark.NOT_PROBED),
        inferred=marks.count(Mark.INFERRED),
    )


# -- labels -------------------------------------------------------------------------------------------------


def source_label(cell: Cell) -> str:
    return f"{cell.from_peer}/{cell.from_container}" if cell.from_container else cell.from_peer


def destination_label(cell: Cell) -> str:
    """Container name, or peer(address) for host/world/unmanaged; IPv6 tagged so it never merges with IPv4."""
    name = cell.to_container or f"{cell.to_peer}({cell.address})"
    try:
        addr = ipaddress.ip_address(cell.address)
    except ValueError:
        return name
    if addr.version == 6 and cell.to_container:
        name += "[ll]" if addr.is_link_local else "[v6]"
    return name


def column_label(cell: Cell) -> str:
    return f"{destination_label(cell)}:{cell.port}/{cell.proto}"


def _column_key(cell: Cell) -> tuple[str, int, str]:
    return (destination_label(cell), cell.port, cell.proto)


# -- the rich matrix ------------------------------------------------------------------------------------------


def grid(pairs: Sequence[Pair]) -> tuple[list[str], list[str], dict[tuple[str, str], Mark]]:
    """Rows, columns (both sorted) and the worst mark at each position that has at least one cell."""
    rows = sorted({source_label(c) for c, _ in pairs})
    cols_by_key = {_column_key(c): column_label(c) for c, _ in pairs}
    cols = [cols_by_key[k] for k in sorted(cols_by_key)]
    marks: dict[tuple[str, str], Mark] = {}
    for c, r in pairs:
        pos = (source_label(c), column_label(c))
        m = mark(c, r)
        if pos not in marks or _SEVERITY[m] < _SEVERITY[marks[pos]]:
            marks[pos] = m
    return rows, cols, marks


def render(
    pairs: Sequence[Pair], title: str | None = "connectivity: rows = from, columns = to"
) -> RenderableType:
    """The matrix, the legend, every wrong cell spelled out, and the summary line."""
    rows, cols, marks = grid(pairs)
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False)
    table.add_column(Text("from \\ to"), no_wrap=True, style="bold", min_width=max(map(len, rows), default=9))
    for col in cols:
        dest, _, portproto = col.rpartition(":")
        # Text, not str: names like "db[ll]" must never be read as rich markup
        table.add_column(Text(f"{dest}\n{portproto}"), justify="center", no_wrap=True)
    for row in rows:
        cells: list[Text | str] = [Text(row)]
        for col in cols:
            m = marks.get((row, col))
            cells.append(Text(m.value, style=_STYLE[m]) if m is not None else "")
        table.add_row(*cells)

    parts = _footer(pairs, table, LEGEND)
    s = summarize(pairs)
    if s.inferred:
        parts.append(
            Text(f"({s.inferred} of the correct cells are UDP blocks inferred from silence)", style="dim")
        )
    return Group(*parts)


COMPACT_LEGEND = (
    "PORTS reachable, as expected   · nothing reachable, as expected   X↑P reachable, expected blocked   "
    "X↓P blocked, expected reachable   - not probed   (…u = UDP)"
)


def _port_text(cells: Sequence[Cell]) -> str:
    ports = sorted({(c.port, c.proto) for c in cells})
    return ",".join(f"{p}{'u' if proto == 'udp' else ''}" for p, proto in ports)


def _dest(cell: Cell) -> str:
    """Compact columns fold a container's IPv4, IPv6 and link-local cells together (mismatches list them)."""
    return cell.to_container or f"{cell.to_peer}({cell.address})"


def compact_grid(pairs: Sequence[Pair]) -> tuple[list[str], list[str], dict[tuple[str, str], Text]]:
    """One column per destination (ports folded into the cell): what reaches what, and every mismatch."""
    rows = sorted({source_label(c) for c, _ in pairs})
    cols = sorted({_dest(c) for c, _ in pairs})
    at: dict[tuple[str, str], list[Pair]] = {}
    for c, r in pairs:
        at.setdefault((source_label(c), _dest(c)), []).append((c, r))
    out: dict[tuple[str, str], Text] = {}
    for pos, items in at.items():
        leaks = [c for c, r in items if mark(c, r) is Mark.LEAK]
        missing = [c for c, r in items if mark(c, r) is Mark.MISSING]
        if leaks or missing:
            t = Text()
            if leaks:
                t.append(f"X↑{_port_text(leaks)}", style=_STYLE[Mark.LEAK])
            if missing:
                t.append((" " if leaks else "") + f"X↓{_port_text(missing)}", style=_STYLE[Mark.MISSING])
            out[pos] = t
        elif all(r.verdict is None for _, r in items):
            out[pos] = Text(Mark.NOT_PROBED.value, style=_STYLE[Mark.NOT_PROBED])
        else:
            reach = [c for c, r in items if r.verdict == Verdict.ALLOW]
            out[pos] = Text(_port_text(reach), style="green") if reach else Text("·", style="dim")
    return rows, cols, out


def render_compact(pairs: Sequence[Pair], title: str | None = "connectivity: rows = from, columns = to") -> RenderableType:
    rows, cols, texts = compact_grid(pairs)
    table = Table(title=Text(title) if title else None, box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False,
                  title_justify="left")
    table.add_column(Text("from \\ to"), no_wrap=True, style="bold", min_width=max(map(len, rows), default=9))
    for col in cols:
        table.add_column(Text(col), justify="center", no_wrap=True)
    for row in rows:
        table.add_row(Text(row), *[texts.get((row, col), Text("")) for col in cols])
    return Group(*_footer(pairs, table, COMPACT_LEGEND))


def _footer(pairs: Sequence[Pair], table: Table, legend: str) -> list[RenderableType]:
    """The table, its legend, every wrong cell spelled out, and the summary line."""
    parts: list[RenderableType] = [table, Text(legend, style="dim")]
    wrong = [(c, r) for c, r in pairs if mark(c, r) in (Mark.LEAK, Mark.MISSING)]
    if wrong:
        parts.append(Text("wrong cells:", style="bold"))
        parts.extend(Text(f"  {describe(c, r)}", style=_STYLE[mark(c, r)]) for c, r in wrong)
    s = summarize(pairs)
    parts.append(Text(s.line, style="bold red" if s.wrong else "bold green"))
    return parts


def describe(cell: Cell, res: ProbeResult) -> str:
    observed = res.verdict.value if res.verdict is not None else "not probed"
    where = f"[{cell.address}]" if ":" in cell.address else cell.address
    why = f" [{cell.why}]" if cell.why else ""
    return (
        f"{mark(cell, res).value} {source_label(cell)} → {destination_label(cell)} {where}:{cell.port}/{cell.proto}: "
        f"expected {cell.expected.value}, observed {observed} ({res.detail}){why}"
    )


def to_text(pairs: Sequence[Pair], *, color: bool = False, title: str | None = None) -> str:
    """The rendered matrix as a string (wide enough that it never wraps)."""
    buf = io.StringIO()
    console = Console(
        file=buf,
        width=10_000,
        color_system="standard" if color else None,
        force_terminal=color,
        highlight=False,
    )
    console.print(render(pairs, title=title))
    return "\n".join(line.rstrip() for line in buf.getvalue().splitlines()) + "\n"


# -- JSON -----------------------------------------------------------------------------------------------------


def to_dict(pairs: Sequence[Pair]) -> dict[str, object]:
    s = summarize(pairs)
    return {
        "cells": [
            {
                "from": c.from_peer,
                "from_container": c.from_container,
                "to": c.to_peer,
                "to_container": c.to_container,
                "address": c.address,
                "port": c.port,
                "proto": c.proto,
                "expected": c.expected.value,
                "observed": r.verdict.value if r.verdict is not None else None,
                "detail": r.detail,
            }
            for c, r in pairs
        ],
        "correct": s.correct,
        "wrong": s.wrong,
    }


def to_json(pairs: Sequence[Pair], *, indent: int | None = 2) -> str:
    return json.dumps(to_dict(pairs), indent=indent, ensure_ascii=False)


# -- JUnit ----------------------------------------------------------------------------------------------------


def to_junit(pairs: Sequence[Pair], suite: str = "podwall verify") -> str:
    """One testcase per cell: failure when wrong, skipped when not probed."""
    s = summarize(pairs)
    counts = {"tests": str(len(pairs)), "failures": str(s.wrong), "errors": "0", "skipped": str(s.not_probed)}
    total_s = sum(r.elapsed_ms for _, r in pairs) / 1000
    root = ET.Element("testsuites", {"name": suite, **counts, "time": f"{total_s:.3f}"})
    ts = ET.SubElement(root, "testsuite", {"name": suite, **counts, "time": f"{total_s:.3f}"})
    for c, r in pairs:
        where = f"[{c.address}]" if ":" in c.address else c.address
        tc = ET.SubElement(
            ts,
            "testcase",
            {
                "classname": f"podwall.verify.{source_label(c)}",
                "name": f"{destination_label(c)} {where}:{c.port}/{c.proto} expect {c.expected.value}",
                "time": f"{r.elapsed_ms / 1000:.3f}",
            },
        )
        m = mark(c, r)
        if m in (Mark.LEAK, Mark.MISSING):
            failure = ET.SubElement(tc, "failure", {"message": describe(c, r), "type": m.name.lower()})
            failure.text = describe(c, r)
        elif m is Mark.NOT_PROBED:
            ET.SubElement(tc, "skipped", {"message": r.detail})
        elif m is Mark.INFERRED:
            ET.SubElement(tc, "system-out").text = "UDP: no answer; block inferred, not proven"
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"
