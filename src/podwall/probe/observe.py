"""From expected cells to (cell, observed result) pairs: the one call `podwall verify` needs.

pairs = observe(expected_cells, timeout_ms=opts.timeout_ms)
print(report.matrix.to_text(pairs)); return summarize(pairs).rc
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from podwall.cells import Cell, Probe, ProbeResult, Verdict
from podwall.probe.engine import DEFAULT_TIMEOUT_MS, probe_all
from podwall.probe.listener import Listener
from podwall.probe.netns import NamespaceError, host_netns_ids

NOT_PROBED = ProbeResult(None, "not probed")


def observe(
    cells: Sequence[Cell],
    timeout_ms: int = DEFAULT_TIMEOUT_MS,
    *,
    udp_listeners: bool = True,
) -> list[tuple[Cell, ProbeResult]]:
    """Probe every cell that has a source namespace; the others come back "not probed".

    Expected-allow cells get one retry after a timeout. With `udp_listeners`, every UDP cell whose
    destination namespace is known gets a temporary echo listener there (started before, stopped after), so
    that an open UDP path shows as "connected" instead of depending on rate-limited ICMP errors.
    """
    probes: list[Probe] = []
    where: list[int] = []
    expect_allow: set[Probe] = set()
    for i, cell in enumerate(cells):
        p = cell.probe
        if p is None:
            continue
        probes.append(p)
        where.append(i)
        if cell.expected == Verdict.ALLOW:
            expect_allow.add(p)

    results: list[ProbeResult] = [NOT_PROBED] * len(cells)
    with contextlib.ExitStack() as stack:
        if udp_listeners:
            for netns, ports in _udp_ports_by_netns(cells).items():
                with contextlib.suppress(NamespaceError):  # gone or host: probe anyway, UDP stays inferred
                    stack.enter_context(Listener(netns, ports, host_ids=host_netns_ids()))
        observed = probe_all(probes, timeout_ms, allow_retry=expect_allow.__contains__)
    for i, res in zip(where, observed, strict=True):
        results[i] = res
    return list(zip(cells, results, strict=True))


def _udp_ports_by_netns(cells: Sequence[Cell]) -> dict[str, set[tuple[int, str]]]:
    plan: dict[str, set[tuple[int, str]]] = {}
    for c in cells:
        if c.proto == "udp" and c.to_netns is not None and c.netns is not None:
            plan.setdefault(c.to_netns, set()).add((c.port, "udp"))
    return plan
