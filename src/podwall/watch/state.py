"""The incremental updater: (element state, changes) → (new state, nft lines). Pure: no I/O.

The compiler groups map elements by their point (single-address) key fields, so the elements whose point is
one of an endpoint's addresses depend on that endpoint's grants only (nft/compile.py `elements`). An update
therefore:
1. applies the changes to the inventory it keeps (containers by id) and resolves it again;
2. finds the endpoints whose rights changed (workloads, managed, enforceable, addresses) and every address
   they had or have (T);
3. drops every element whose point is in T and recomputes exactly those groups from the grants that touch
   the endpoints owning T (`grants(res, only=…)`);
4. diffs old against new, and renders the difference as `add element` / `delete element` lines for one
   `nft -f` batch.
The result equals compiling the final inventory from scratch (tests/unit/test_watch_state.py replays event
sequences and checks exactly that).

Addresses are unique per namespace at any instant. If a container arrives with an address that the state
still gives to another namespace (its died/remove event was lost or is still queued), the newcomer wins and
the stale holder loses the address in the same update: a reused IP never inherits the old rights.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from podwall.model import Container, Inventory, IPAddress, Network
from podwall.nft.compile import FAMILY, TABLE, Element, Ruleset, elements, point_indexes
from podwall.policy.schema import Policy
from podwall.policy.semantics import Endpoint, Resolved, grants, resolve

MapElem = tuple[str, Element]  # (map name, element)
MANAGED_SETS = ("managed4", "managed6")


@dataclass(frozen=True)
class Upsert:
    """The container as `podman container inspect` shows it now (init, start, rename, connect, …)."""

    container: Container


@dataclass(frozen=True)
class Down:
    """Its network is torn down (died, cleanup, stop): it keeps its name and labels, loses its addresses."""

    id: str


@dataclass(frozen=True)
class Remove:
    id: str


Change = Upsert | Down | Remove


def _point_indexes() -> dict[str, tuple[int, ...]]:
    """For each map: which key fields are single addresses (the grouping key of `elements`)."""
    return point_indexes()


POINTS = _point_indexes()


def points(me: MapElem) -> tuple[str, ...]:
    name, el = me
    return tuple(el.key[i] for i in POINTS[name])


def container_key(c: Container) -> str:
    return c.id or c.name


def rights(ep: Endpoint) -> tuple[object, ...]:
    """What the ruleset depends on: two endpoints with equal rights compile to the same elements."""
    return (ep.workloads, ep.managed, ep.enforceable, ep.v4, ep.v6)


def strip_addresses(c: Container) -> Container:
    nets = tuple(dataclasses.replace(a, ipv4=(), ipv6=()) for a in c.networks)
    return dataclasses.replace(c, networks=nets, running=False, pid=None, sandbox_key=None)


@dataclass(frozen=True)
class Delta:
    add: tuple[MapElem, ...] = ()
    delete: tuple[MapElem, ...] = ()
    add_managed: tuple[str, ...] = ()
    delete_managed: tuple[str, ...] = ()
    granted: tuple[Endpoint, ...] = ()  # endpoints (new view) that have rights after the update
    revoked: tuple[Endpoint, ...] = ()  # endpoints (old view) that lost some or all of their rights
    touched: frozenset[str] = frozenset()  # addresses whose elements were recomputed

    @property
    def empty(self) -> bool:
        return not (self.add or self.delete or self.add_managed or self.delete_managed)

    def lines(self) -> list[str]:
        """One batch. nft 1.0.6 has no `destroy`: a delete is preceded by an `add` of the same element, so
        the batch does not fail when someone already removed it (a changed verdict still fails: drift)."""
        out: list[str] = []
        dels = _by_map(self.delete)
        for name in sorted(dels):
            es = dels[name]
            out.append(f"add element {FAMILY} {TABLE} {name} {{ {', '.join(e.render() for e in es)} }}")
            out.append(
                f"delete element {FAMILY} {TABLE} {name} {{ {', '.join(' . '.join(e.key) for e in es)} }}"
            )
        for set_name, addrs in _managed_by_set(self.delete_managed).items():
            out.append(f"add element {FAMILY} {TABLE} {set_name} {{ {', '.join(addrs)} }}")
            out.append(f"delete element {FAMILY} {TABLE} {set_name} {{ {', '.join(addrs)} }}")
        for set_name, addrs in _managed_by_set(self.add_managed).items():
            out.append(f"add element {FAMILY} {TABLE} {set_name} {{ {', '.join(addrs)} }}")
        adds = _by_map(self.add)
        for name in sorted(adds):
            out.append(
                f"add element {FAMILY} {TABLE} {name} {{ {', '.join(e.render() for e in adds[name])} }}"
            )
        return out


def _by_map(items: Iterable[MapElem]) -> dict[str, list[Element]]:
    out: dict[str, list[Element]] = defaultdict(list)
    for name, el in sorted(items):
        out[name].append(el)
    return out


def _managed_by_set(addrs: Iterable[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for a in sorted(addrs):
        out.setdefault("managed6" if ":" in a else "managed4", []).append(a)
    return out


def _managed(res: Resolved) -> frozenset[str]:
    return frozenset(str(a) for a in res.managed_addresses)


def _elements_of(res: Resolved, owners: list[Endpoint]) -> set[MapElem]:
    """Every element whose point is an address of `owners`: complete groups (see the module docstring)."""
    if not owners:
        return set()
    return {(m, e) for m, es in elements(grants(res, only=owners)).items() for e in es}


@dataclass(frozen=True)
class WatchState:
    """What podwall believes is loaded, as the inventory it was compiled from.

    The elements themselves are not stored: the groups an update touches are recomputed from the old and
    the new resolution, which costs O(touched) instead of copying every element on every event.
    """

    policy: Policy
    networks: tuple[Network, ...]
    containers: Mapping[str, Container]  # by id
    resolved: Resolved
    managed: frozenset[str]  # the rendered addresses of managed4 and managed6
    sizes: Mapping[str, int]  # map name → element count (metrics)

    @classmethod
    def build(cls, policy: Policy, inv: Inventory, ruleset: Ruleset | None = None) -> WatchState:
        """The state after a full apply; pass the applied ruleset to reuse its counts."""
        res = resolve(policy, inv)
        maps = dict(ruleset.maps) if ruleset is not None else elements(grants(res))
        return cls(
            policy=policy,
            networks=inv.networks,
            containers=MappingProxyType({container_key(c): c for c in inv.containers}),
            resolved=res,
            managed=_managed(res),
            sizes=MappingProxyType({m: len(es) for m, es in maps.items() if es}),
        )

    @property
    def inventory(self) -> Inventory:
        return Inventory(
            containers=tuple(sorted(self.containers.values(), key=lambda c: c.name)), networks=self.networks
        )

    def maps(self) -> dict[str, tuple[Element, ...]]:
        """Map name → sorted elements, only non-empty maps (the shape of Ruleset.maps, sorted)."""
        return {k: tuple(sorted(v)) for k, v in sorted(elements(grants(self.resolved)).items()) if v}

    def sets(self) -> dict[str, tuple[str, ...]]:
        by = _managed_by_set(self.managed)
        return {s: tuple(sorted(by.get(s, []), key=_addr_sort)) for s in MANAGED_SETS}


def _addr_sort(a: str) -> tuple[int, int]:
    import ipaddress

    ip = ipaddress.ip_address(a)
    return (ip.version, int(ip))


def _apply(containers: dict[str, Container], change: Change) -> str | None:
    """Mutates the working copy; returns the key of a freshly inspected container."""
    if isinstance(change, Upsert):
        c = change.container
        key = container_key(c)
        for k, other in list(containers.items()):
            if k != key and other.name == c.name:  # names are unique: the old one is gone
                del containers[k]
        containers[key] = c
        return key
    if isinstance(change, Down):
        if change.id in containers:
            containers[change.id] = strip_addresses(containers[change.id])
        return None
    containers.pop(change.id, None)
    return None


def _owner_key(containers: Mapping[str, Container], ep: Endpoint) -> str | None:
    return next((k for k, c in containers.items() if c.name == ep.key), None)


def _resolve_unique(
    policy: Policy, containers: dict[str, Container], networks: tuple[Network, ...], fresh: set[str]
) -> Resolved:
    """Resolve; an address held by two namespaces stays only with the freshly inspected one."""
    while True:
        inv = Inventory(
            containers=tuple(sorted(containers.values(), key=lambda c: c.name)), networks=networks
        )
        res = resolve(policy, inv)
        holders: dict[IPAddress, list[Endpoint]] = defaultdict(list)
        for ep in res.endpoints:
            for a in ep.addresses:
                holders[a].append(ep)
        clashes = {a: eps for a, eps in holders.items() if len(eps) > 1}
        if not clashes:
            return res
        fresh_names = {containers[k].name for k in fresh if k in containers}
        changed = False
        for a, eps in clashes.items():
            winners = [ep for ep in eps if fresh_names & set(ep.containers)]
            for ep in eps:
                if len(winners) == 1 and ep is winners[0]:
                    continue  # no single fresh holder: nobody keeps it (fail closed until a resync)
                k = _owner_key(containers, ep)
                if k is None:
                    continue
                c = containers[k]
                nets = tuple(
                    dataclasses.replace(
                        att,
                        ipv4=tuple(x for x in att.ipv4 if x != a),
                        ipv6=tuple(x for x in att.ipv6 if x != a),
                    )
                    for att in c.networks
                )
                if nets != c.networks:
                    containers[k] = dataclasses.replace(c, networks=nets)
                    changed = True
        if not changed:
            return res


def update(state: WatchState, changes: Sequence[Change]) -> tuple[WatchState, Delta]:
    """Apply container changes; return the new state and the element delta that gets there."""
    containers = dict(state.containers)
    fresh: set[str] = set()
    for ch in changes:
        key = _apply(containers, ch)
        if key is not None:
            fresh.add(key)
        elif isinstance(ch, Down | Remove):
            fresh.discard(ch.id)
    res = _resolve_unique(state.policy, containers, state.networks, fresh)

    old_eps = {ep.key: ep for ep in state.resolved.endpoints}
    new_eps = {ep.key: ep for ep in res.endpoints}
    changed = [
        k
        for k in old_eps.keys() | new_eps.keys()
        if (old_eps.get(k) is None) != (new_eps.get(k) is None)
        or (k in old_eps and k in new_eps and rights(old_eps[k]) != rights(new_eps[k]))
    ]
    touched: set[IPAddress] = set()
    for k in changed:
        for ep in (old_eps.get(k), new_eps.get(k)):
            if ep is not None:
                touched.update(ep.addresses)
    # Close T over every namespace holding one of its addresses, before and after: then the groups keyed
    # by T are complete on both sides, and everything outside T is untouched.
    while True:
        old_owners = [ep for ep in state.resolved.endpoints if touched.intersection(ep.addresses)]
        new_owners = [ep for ep in res.endpoints if touched.intersection(ep.addresses)]
        grown = touched.union(*(ep.addresses for ep in old_owners + new_owners))
        if grown == touched:
            break
        touched = grown

    old_touch = _elements_of(state.resolved, old_owners)
    new_touch = _elements_of(res, new_owners)
    add = new_touch - old_touch
    delete = old_touch - new_touch
    managed = _managed(res)
    sizes = dict(state.sizes)
    for name, _ in add:
        sizes[name] = sizes.get(name, 0) + 1
    for name, _ in delete:
        sizes[name] = sizes.get(name, 0) - 1

    granted = tuple(
        new_eps[k] for k in sorted(changed) if k in new_eps and new_eps[k].addresses and new_eps[k].managed
    )
    revoked = tuple(
        old_eps[k] for k in sorted(changed) if k in old_eps and old_eps[k].addresses and old_eps[k].managed
    )
    delta = Delta(
        add=tuple(sorted(add)),
        delete=tuple(sorted(delete)),
        add_managed=tuple(sorted(managed - state.managed)),
        delete_managed=tuple(sorted(state.managed - managed)),
        granted=granted,
        revoked=revoked,
        touched=frozenset(str(a) for a in touched),
    )
    new_state = WatchState(
        policy=state.policy,
        networks=state.networks,
        containers=MappingProxyType(containers),
        resolved=res,
        managed=managed,
        sizes=MappingProxyType({k: v for k, v in sizes.items() if v > 0}),
    )
    return new_state, delta


def change_for(action: object, cid: str, inspect: Callable[[str], Container | None]) -> Change | None:
    """What one event means for the state. `inspect` returns the container as it is now, None if gone."""
    from podwall.watch.events import Action

    if action is Action.REFRESH:
        c = inspect(cid)
        return Remove(cid) if c is None else Upsert(c)
    if action is Action.DOWN:
        return Down(cid)
    if action is Action.REMOVE:
        return Remove(cid)
    return None
