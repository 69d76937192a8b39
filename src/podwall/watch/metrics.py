"""Prometheus metrics of the daemon, on its own registry (served on 127.0.0.1 unless told otherwise).

Gauges that describe the state (containers per workload, set/map sizes) and the nft counters (per-flow
accepts, denies) are read at scrape time, so a scrape always shows what is loaded now.

Per-flow accepts are counted on each map element (the table has no chain per flow), and an element goes away
with its container. FlowTotals keeps the exported counters monotonic: it adds each element's growth since the
previous scrape, so what a removed element counted up to the last scrape stays in its flow's total.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from podwall.errors import PodwallError
from podwall.nft.live import ElementCounter
from podwall.watch.state import WatchState

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FlowTotals:
    """Monotonic per-flow accept packets from per-element counters (pure: fed one reading at a time)."""

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], int] = {}
        self.totals: dict[tuple[int, str], int] = {}
        self.lock = threading.Lock()  # the metrics server answers scrapes in threads

    def add(self, elements: list[ElementCounter], flow_names: list[str]) -> dict[tuple[int, str], int]:
        """(flow, description) → packets accepted since the daemon started."""
        with self.lock:
            return self._add(elements, flow_names)

    def _add(self, elements: list[ElementCounter], flow_names: list[str]) -> dict[tuple[int, str], int]:
        seen: dict[tuple[str, str], int] = {}
        for e in elements:
            k = (e.map, e.key)
            prev = self.last.get(k, 0)
            grew = e.packets - prev if e.packets >= prev else e.packets  # smaller: a new element, same key
            desc = flow_names[e.flow] if e.flow < len(flow_names) else "?"
            self.totals[(e.flow, desc)] = self.totals.get((e.flow, desc), 0) + grew
            seen[k] = e.packets
        for f, desc in enumerate(flow_names):  # every flow of the policy has a series, from 0
            self.totals.setdefault((f, desc), 0)
        self.last = seen
        return dict(self.totals)


class _Live(Collector):
    def __init__(
        self,
        state: Callable[[], WatchState | None],
        counters: Callable[[], tuple[list[ElementCounter], int]],
        flow_names: Callable[[], list[str]],
    ) -> None:
        self.state = state
        self.counters = counters
        self.flow_names = flow_names
        self.totals = FlowTotals()

    def collect(self) -> Iterator[Any]:
        st = self.state()
        per_wl = GaugeMetricFamily(
            "podwall_containers", "Running containers per workload", labels=["workload"]
        )
        sizes = GaugeMetricFamily(
            "podwall_set_elements", "Elements per nft set/map of table inet podwall", labels=["set"]
        )
        if st is not None:
            running = {c.name for c in st.containers.values() if c.running or c.addresses}
            for wl, names in sorted(st.resolved.members.items()):
                per_wl.add_metric([wl], sum(1 for n in names if n in running))
            for name, n in sorted(st.sizes.items()):
                sizes.add_metric([name], n)
            for name, addrs in st.sets().items():
                sizes.add_metric([name], len(addrs))
        yield per_wl
        yield sizes
        accepts = CounterMetricFamily(
            "podwall_flow_accepts", "New connections accepted per flow (nft counter)", labels=["flow", "desc"]
        )
        denied = CounterMetricFamily("podwall_denied_packets", "Packets denied (or, in audit mode, logged)")
        try:
            elements, n_denied = self.counters()
        except PodwallError:
            elements, n_denied = [], None
        for (flow, desc), packets in sorted(self.totals.add(elements, self.flow_names()).items()):
            accepts.add_metric([str(flow), desc], packets)
        yield accepts
        if n_denied is not None:
            denied.add_metric([], n_denied)
        yield denied


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.latency = Histogram(
            "podwall_event_enforce_seconds",
            "From Podman's event timestamp to the nft commit that enforces it",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.events = Counter("podwall_events", "Podman events handled", ["type", "status"], registry=r)
        self.batches = Counter("podwall_element_batches", "Incremental nft batches committed", registry=r)
        self.resyncs = Counter("podwall_resyncs", "Full resyncs", ["reason"], registry=r)
        self.restores = Counter(
            "podwall_restores", "Restores of a missing or changed table", ["reason"], registry=r
        )
        self.netavark = Counter(
            "podwall_netavark_changes", "netavark's rules changed while ours stayed intact", registry=r
        )
        self.errors = Counter("podwall_errors", "Errors", ["kind"], registry=r)
        self.last_error_time = Gauge(
            "podwall_last_error_timestamp_seconds", "When the last error happened", registry=r
        )
        self.last_error = Info("podwall_last_error", "The last error", registry=r)
        self.last_apply = Gauge(
            "podwall_last_full_apply_timestamp_seconds", "When the table was last loaded whole", registry=r
        )
        self.cut = Counter("podwall_connections_cut", "Established connections cut (conntrack)", registry=r)
        self.server: Any = None

    def error(self, kind: str, message: str) -> None:
        self.errors.labels(kind).inc()
        self.last_error_time.set(time.time())
        self.last_error.info({"kind": kind, "message": message[:500]})

    def attach(
        self,
        state: Callable[[], WatchState | None],
        counters: Callable[[], tuple[list[ElementCounter], int]],
        flow_names: Callable[[], list[str]],
    ) -> None:
        self.registry.register(_Live(state, counters, flow_names))

    def serve(self, host: str, port: int) -> int:
        """Start the HTTP endpoint; returns the bound port."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self.server = server
        return int(server.server_address[1])

    def close(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
