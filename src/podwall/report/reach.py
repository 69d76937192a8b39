"""The observed reachability matrix (verify --baseline): what can reach what today, no expectations."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from podwall.cells import Cell, ProbeResult, Verdict
from podwall.report.matrix import destination_label

Pair = tuple[Cell, ProbeResult]


def _src(cell: Cell) -> str:
    return cell.from_container or cell.from_peer


def render(pairs: Sequence[Pair], title: str = "reachable today: rows = from, columns = to") -> RenderableType:
    """Each position lists the probed ports that answered (connected or refused: the packet got through)."""
    rows = sorted({_src(c) for c, _ in pairs})
    cols = sorted({destination_label(c) for c, _ in pairs})
    open_ports: dict[tuple[str, str], set[tuple[int, str]]] = {}
    probed: set[tuple[str, str]] = set()
    for c, r in pairs:
        pos = (_src(c), destination_label(c))
        if r.verdict is not None:
            probed.add(pos)
        if r.verdict == Verdict.ALLOW:
            open_ports.setdefault(pos, set()).add((c.port, c.proto))
    t = Table(title=Text(title), box=box.SIMPLE_HEAD, title_justify="left", show_lines=False, pad_edge=False)
    t.add_column(Text("from \\ to"), no_wrap=True, style="bold", min_width=max(map(len, rows), default=9))
    for col in cols:
        t.add_column(Text(col), justify="center", no_wrap=True)
    for row in rows:
        cells = []
        for col in cols:
            ports = sorted(open_ports.get((row, col), ()))
            if ports:
                cells.append(Text(",".join(f"{p}{'u' if pr == 'udp' else ''}" for p, pr in ports), style="bold red"))
            elif (row, col) in probed:
                cells.append(Text("·", style="dim"))
            else:
                cells.append(Text(""))
        t.add_row(Text(row), *cells)
    n_open = sum(1 for _, r in pairs if r.verdict == Verdict.ALLOW)
    n_probed = sum(1 for _, r in pairs if r.verdict is not None)
    legend = Text("PORTS reachable (connected or refused: the packet got through)   · blocked", style="dim")
    return Group(t, legend, Text(f"{n_open} of {n_probed} probed cells reachable", style="bold"))
