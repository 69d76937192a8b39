"""The observed reachability matrix (verify --baseline): what can reach what today, no expectations."""

from __future__ import annotations

from collections.abc import Sequence

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from podwall.cells import Cell, ProbeResult, Verdict
from podwall.report.matrix import column_label, source_label

Pair = tuple[Cell, ProbeResult]
OPEN, CLOSED, UNKNOWN = "●", "·", "-"


def render(
    pairs: Sequence[Pair], title: str = "reachable today: rows = from, columns = to"
) -> RenderableType:
    rows = sorted({source_label(c) for c, _ in pairs})
    cols = sorted({column_label(c) for c, _ in pairs})
    cell_at: dict[tuple[str, str], str] = {}
    for c, r in pairs:
        pos = (source_label(c), column_label(c))
        sym = UNKNOWN if r.verdict is None else OPEN if r.verdict == Verdict.ALLOW else CLOSED
        if cell_at.get(pos) != OPEN:  # any reachable path at that position shows as reachable
            cell_at[pos] = sym
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", show_lines=False)
    t.add_column("from \\ to", no_wrap=True)
    for col in cols:
        t.add_column(Text(col), justify="center", no_wrap=True)
    for row in rows:
        t.add_row(
            row,
            *[
                Text(
                    cell_at.get((row, col), ""),
                    style="bold red" if cell_at.get((row, col)) == OPEN else "green",
                )
                for col in cols
            ],
        )
    n_open = sum(1 for c, r in pairs if r.verdict == Verdict.ALLOW)
    n_probed = sum(1 for _, r in pairs if r.verdict is not None)
    summary = Text(
        f"{n_open} of {n_probed} probed cells reachable   ({OPEN} reachable  {CLOSED} blocked  - not probed)"
    )
    return Group(t, summary)
