"""The watch loop: apply, follow events, update elements, detect drift, reload on SIGHUP.

One thread decides (this loop); the event sources and the metrics server run beside it and only hand
things over through a queue or read immutable state. Everything that changes the kernel goes through the
pure updater (state.update) or a full apply (enforce.apply), both under the lock the CLI holds.

Fail closed throughout: the table denies unknown addresses on managed bridges, so a container the daemon
has not processed yet has no rights; a lost or failed update is repaired by a full apply; the table is never
removed on exit (SIGTERM or kill -9).
"""

from __future__ import annotations

import functools
import queue
import signal
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from podwall import enforce
from podwall.errors import InputError, PodwallError
from podwall.model import Container
from podwall.nft.live import Nft
from podwall.policy.load import LoadedPolicy
from podwall.watch.events import Action, Event
from podwall.watch.logs import DecisionLog
from podwall.watch.metrics import Metrics
from podwall.watch.sources import EventsFileTail, Item, PodmanEventStream, Received, StreamEnded
from podwall.watch.state import Change, Delta, Remove, Upsert, WatchState, change_for, update

DRIFT_SECONDS = 1.0  # how often the loaded table is compared with the snapshot (restore goal: 5 s)
QUIET_SECONDS = 3.0  # netavark's chains change with containers too: only report a change after quiet
MAX_BATCH = 256


@dataclass
class Options:
    policy_file: str
    resync_seconds: float = 30.0
    drift_seconds: float = DRIFT_SECONDS
    force: bool = False
    events_file: Path | None = None  # None: no file tail (journald logger)
    podman: str = "podman"


@dataclass
class Adapters:
    """The I/O the loop needs; tests may swap any of them."""

    env: enforce.Environment
    inspect: Callable[[str], Container | None]
    learn_pods: Callable[[], None]
    pod_event: Callable[[str, str, str], None]
    revoke_touched: Callable[[Any, frozenset[str]], int]
    netavark_fingerprint: Callable[[], str | None]
    load_policy: Callable[[str], LoadedPolicy]
    notify: Callable[[str], bool]


@dataclass
class _Flags:
    stop: bool = False
    reload: bool = False
    signals: list[int] = field(default_factory=list)


class Watcher:
    def __init__(
        self,
        opts: Options,
        loaded: LoadedPolicy,
        adapters: Adapters,
        log: DecisionLog,
        metrics: Metrics | None = None,
    ) -> None:
        self.opts = opts
        self.loaded = loaded
        self.ad = adapters
        self.log = log
        self.metrics = metrics or Metrics()
        self.nft: Nft = adapters.env.nft
        self.state: WatchState | None = None
        self.snapshot: str | None = None
        self.fingerprint: str | None = None
        self.queue: queue.Queue[Item] = queue.Queue()
        self.stop_sources = threading.Event()
        self.flags = _Flags()
        self.seen: OrderedDict[tuple[str, ...], None] = OrderedDict()
        self.inspected_at: dict[str, float] = {}  # container id → wall clock when its last inspect began
        self.last_event = 0.0  # monotonic: last container/network event
        self.resync_due = False
        self.tail: EventsFileTail | None = None
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="inspect")
        self.stream: PodmanEventStream | None = None

    # ---- signals ---------------------------------------------------------------------------------------

    def install_signals(self) -> None:
        # Handlers only set flags: the loop polls them at least every 250 ms (queue.put from a handler
        # could deadlock on the queue's own lock).
        def on_term(signum: int, _frame: FrameType | None) -> None:
            self.flags.stop = True

        def on_hup(signum: int, _frame: FrameType | None) -> None:
            self.flags.reload = True

        signal.signal(signal.SIGTERM, on_term)
        signal.signal(signal.SIGINT, on_term)
        signal.signal(signal.SIGHUP, on_hup)

    # ---- start-up --------------------------------------------------------------------------------------

    def start_sources(self) -> None:
        """Before the first apply, so that nothing between the inventory read and the loop is missed."""
        if self.opts.events_file is not None:
            self.tail = EventsFileTail(self.opts.events_file, self.queue, self.stop_sources)
            self.tail.start()
        self.stream = PodmanEventStream(self.queue, self.stop_sources, self.opts.podman)
        self.stream.start()

    def start(self) -> None:
        self.start_sources()
        self.ad.learn_pods()
        self.full_apply("start", self.loaded)
        self.ad.notify("READY=1\nSTATUS=enforcing " + Path(self.loaded.path).name)

    # ---- full apply ------------------------------------------------------------------------------------

    def full_apply(self, why: str, loaded: LoadedPolicy) -> None:
        """The same path as `podwall apply`: networks, compile, nft -c, one transaction, revocation."""
        t0 = time.monotonic()
        result = enforce.apply(loaded, self.ad.env, force=self.opts.force)
        plan, cut, created = result.plan, result.cut, result.created
        for w in result.warnings:
            self.log("warning", level="warning", message=w)
        self.state = WatchState.build(loaded.policy, plan.resolved.inventory, plan.ruleset)
        self.loaded = loaded
        self.snapshot = result.snapshot if result.snapshot is not None else self.nft.snapshot()
        self.fingerprint = self.ad.netavark_fingerprint()
        self.metrics.last_apply.set(time.time())
        if cut:
            self.metrics.cut.inc(cut)
        rs = plan.ruleset
        self.log(
            "apply",
            reason=why,
            policy=loaded.path,
            sha256=loaded.short_hash,
            flows=rs.flow_count,
            elements=rs.element_count,
            containers=sum(1 for c in plan.resolved.inventory.containers if c.running),
            networks_created=created or None,
            connections_cut=cut,
            took_ms=round((time.monotonic() - t0) * 1000, 1),
        )

    # ---- the loop --------------------------------------------------------------------------------------

    def run(self) -> None:
        now = time.monotonic()
        next_drift = now + self.opts.drift_seconds
        next_resync = now + self.opts.resync_seconds
        while not self.flags.stop:
            if self.flags.reload:
                self.flags.reload = False
                self.reload()
            timeout = max(0.0, min(0.25, next_drift - time.monotonic(), next_resync - time.monotonic()))
            items: list[Item] = []
            try:
                items.append(self.queue.get(timeout=timeout))
                while len(items) < MAX_BATCH:
                    items.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            if items:
                self.guarded("events", functools.partial(self.handle, items))
            now = time.monotonic()
            # A timer resync reads everything (about a second under churn): while events flow, the stream
            # is evidently alive, so it waits for a quiet moment, at most one more period.
            busy = now - self.last_event < 1.0 and now < next_resync + self.opts.resync_seconds
            if self.resync_due or (now >= next_resync and not busy):
                reason = "stream" if self.resync_due else "timer"
                self.resync_due = False
                self.guarded("resync", functools.partial(self.resync, reason))
                next_resync = time.monotonic() + self.opts.resync_seconds
            if now >= next_drift:
                self.guarded("drift", self.check_drift)
                next_drift = time.monotonic() + self.opts.drift_seconds

    def guarded(self, what: str, fn: Callable[[], None]) -> None:
        """A failure is logged, counted and repaired by a resync; it never stops enforcement."""
        try:
            fn()
        except PodwallError as exc:
            self.error(what, str(exc))
            self.resync_due = what != "resync"
        except Exception as exc:  # a bug: say so loudly, keep the table, try to converge again
            self.error(what, f"internal error: {type(exc).__name__}: {exc}", tb=traceback.format_exc())
            self.resync_due = what != "resync"

    def error(self, kind: str, message: str, tb: str | None = None) -> None:
        self.metrics.error(kind, message)
        self.log("error", level="error", during=kind, message=message, traceback=tb)

    def shutdown(self) -> None:
        """SIGTERM: stop following events and leave the table exactly as it is."""
        self.ad.notify("STOPPING=1")
        self.stop_sources.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.stream is not None:
            self.stream.close()
        self.log("stop", table="left in place")

    # ---- events ----------------------------------------------------------------------------------------

    def _new(self, ev: Event) -> bool:
        if ev.key in self.seen:
            return False
        self.seen[ev.key] = None
        if len(self.seen) > 4096:
            self.seen.popitem(last=False)
        return True

    def handle(self, items: list[Item]) -> None:
        assert self.state is not None
        events: list[Received] = []
        for it in items:
            if isinstance(it, StreamEnded):
                self.log("reconnect", level="warning", reason=it.reason)
                self.resync_due = True
            elif isinstance(it, Received) and self._new(it.event):
                events.append(it)
        # Revocations first, in their own batch: they need no podman call, so a slow inspect (podman waits
        # on container locks under churn) never delays taking an address's rights away.
        downs: list[Change] = []
        down_handled: list[Received] = []
        refresh: list[Received] = []
        for rec in events:
            ev = rec.event
            action = ev.action
            if action is Action.IGNORE:
                continue
            self.metrics.events.labels(ev.type, ev.status).inc()
            self.last_event = time.monotonic()
            if action is Action.POD:
                self.ad.pod_event(ev.id, ev.name, ev.status)
            elif action is Action.RESYNC:
                self.resync_due = True
            elif action is Action.REFRESH:
                refresh.append(rec)
            else:
                if action is Action.REMOVE:
                    self.inspected_at.pop(ev.id, None)
                ch = change_for(action, ev.id, lambda cid: None)
                if ch is not None:
                    downs.append(ch)
                    down_handled.append(rec)
        if down_handled:
            new_state, delta = update(self.state, downs)
            self.commit(new_state, delta, down_handled)
        if not refresh:
            return
        # A grant reflects the container as it is *now*, so it may follow the revocations above. One
        # inspect per container, all of the batch's in parallel; none for an event that an inspect begun
        # after it has already seen.
        handled = [r for r in refresh if self.inspected_at.get(r.event.id, 0.0) <= r.event.time]
        skipped = [r for r in refresh if r not in handled]
        ids = list(dict.fromkeys(r.event.id for r in handled))
        began = time.time()
        for cid in ids:
            self.inspected_at[cid] = began
        found = dict(zip(ids, self.pool.map(self.ad.inspect, ids), strict=True))
        changes: list[Change] = []
        for cid in ids:
            ch = change_for(Action.REFRESH, cid, found.__getitem__)
            if isinstance(ch, Upsert) and self._unknown_network(ch.container):
                self.resync_due = True  # Podman < 5.3 logs no network create: a full apply learns it
            if ch is not None:
                changes.append(ch)
        assert self.state is not None
        new_state, delta = update(self.state, changes)
        self.commit(new_state, delta, handled + skipped)

    def _unknown_network(self, c: Container) -> bool:
        assert self.state is not None
        known = {n.name for n in self.state.networks}
        return any(a.network not in known for a in c.networks)

    def commit(self, new_state: WatchState, delta: Delta, handled: list[Received]) -> None:
        if not delta.empty:
            try:
                self.nft.batch(delta.lines())
            except PodwallError as exc:
                # The table is not what we think (an element removed or changed behind our back) or nft
                # failed: the incremental path cannot be trusted, load it whole. Until that works, the
                # cleared snapshot makes every drift check try again.
                self.error("batch", str(exc))
                self.state = new_state
                self.snapshot = None
                self.restore("batch failed")
                return
            self.metrics.batches.inc()
        self.state = new_state
        done = time.time()
        if handled:
            # netavark changes its own rules as containers come and go: that is not a netavark restart
            self.fingerprint = self.ad.netavark_fingerprint() or self.fingerprint
        for rec in handled:
            self.metrics.latency.observe(max(0.0, done - rec.event.time))
        first = min(handled, key=lambda r: r.event.time) if handled else None
        timing: dict[str, Any] = {}
        if first is not None:
            # latency: Podman's event timestamp → committed; delivered: how much of it the source took
            timing = {
                "event": first.event.status,
                "source": first.source,
                "latency_ms": round(max(0.0, done - first.event.time) * 1000, 1),
                "delivered_ms": round(max(0.0, first.at - first.event.time) * 1000, 1),
            }
        if delta.empty:
            return
        self.snapshot = self.nft.snapshot()  # our own commit is never drift
        self._save_state_snapshot()
        names = {ep.key for ep in delta.granted}
        for decision, eps, elems in (("grant", delta.granted, delta.add), ("revoke", delta.revoked, delta.delete)):
            for ep in eps:
                if decision == "revoke" and ep.key in names:
                    continue  # re-granted in the same batch: the grant line says it all
                addresses = [str(a) for a in ep.addresses]
                addrs = set(addresses)
                self.log(
                    decision,
                    container=list(ep.containers),
                    workloads=sorted(ep.workloads) or ["unmatched"],
                    addresses=addresses,
                    elements=sum(1 for _, e in elems if set(e.key) & addrs),
                    **timing,
                )
        if delta.delete:
            cut = self.ad.revoke_touched(new_state.resolved, delta.touched)
            if cut:
                self.metrics.cut.inc(cut)
                self.log("cut", connections=cut, addresses=sorted(delta.touched))

    def _save_state_snapshot(self) -> None:
        """`podwall status` compares the live table with state.json: keep it current after our commits."""
        st = enforce.State.load()
        if st is not None and self.snapshot is not None:
            st.snapshot = self.snapshot
            st.save()

    # ---- resync, drift, reload ---------------------------------------------------------------------------

    def resync(self, reason: str) -> None:
        """Read everything again. Same networks: converge with an element delta. Otherwise: a full apply."""
        assert self.state is not None
        self.metrics.resyncs.labels(reason).inc()
        self.ad.learn_pods()
        started = time.time()
        inv = self.ad.env.read_inventory()
        if inv.networks != self.state.networks:
            self.full_apply(f"resync ({reason}): networks changed", self.loaded)
            return
        fresh = {c.id or c.name for c in inv.containers}
        changes: list[Change] = [Upsert(c) for c in inv.containers]
        changes += [Remove(k) for k in self.state.containers if k not in fresh]
        new_state, delta = update(self.state, changes)
        for c in inv.containers:
            self.inspected_at[c.id] = started
        if not delta.empty:
            self.log(
                "resync", level="warning", reason=reason, added=len(delta.add), deleted=len(delta.delete)
            )
        self.commit(new_state, delta, [])

    def restore(self, why: str) -> None:
        t0 = time.monotonic()
        self.metrics.restores.labels(why.split(":")[0]).inc()
        self.full_apply(f"restore: {why}", self.loaded)
        self.log("restore", level="warning", reason=why, took_ms=round((time.monotonic() - t0) * 1000, 1))

    def check_drift(self) -> None:
        try:
            snap = self.nft.snapshot()
        except PodwallError as exc:
            # e.g. nft crashing on another program's table: not evidence against ours, try again later
            self.error("drift-check", str(exc))
            return
        fp = self.ad.netavark_fingerprint()
        netavark_changed = fp is not None and self.fingerprint is not None and fp != self.fingerprint
        if snap is None or snap != self.snapshot:
            what = "table inet podwall is missing" if snap is None else "table inet podwall was changed"
            cause = (
                "the ruleset was flushed or reloaded (netavark's rules changed too)"
                if netavark_changed
                else "tampering with podwall's table (netavark's rules untouched)"
            )
            self.log("drift", level="warning", found=what, cause=cause)
            self.restore(f"{'missing' if snap is None else 'changed'}: {cause}")
            return
        if netavark_changed and time.monotonic() - self.last_event > QUIET_SECONDS:
            self.metrics.netavark.inc()
            self.log(
                "netavark",
                reason="netavark's rules changed (a netavark restart or network reload); "
                "table inet podwall intact, nothing to do",
            )
        if fp is not None:
            self.fingerprint = fp

    def reload(self) -> None:
        """SIGHUP: load the file again; apply it whole, or keep the old policy if it is invalid."""
        try:
            loaded = self.ad.load_policy(self.opts.policy_file)
        except InputError as exc:
            msgs = [p.render() for p in exc.problems]
            self.metrics.error("reload", "; ".join(msgs))
            self.log(
                "reload", level="error", result="refused: invalid policy, the old one stays", errors=msgs
            )
            return
        try:
            self.full_apply("reload", loaded)
        except PodwallError as exc:
            self.metrics.error("reload", str(exc))
            self.log(
                "reload",
                level="error",
                result="refused: apply failed, the old policy stays",
                errors=[str(exc)],
            )
            return
        self.log("reload", result="applied", sha256=loaded.short_hash)
