"""Plan, apply, status and reset: the service layer between the CLI and the adapters.

Apply order (SPEC §4): validate → create missing networks → compile with the real subnets → `nft -c` →
apply in one transaction → cut connections the new ruleset no longer allows. On failure, only the networks
this run created are removed, and the live ruleset is left exactly as it was.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from podwall.errors import EnvironmentProblem, PodwallError
from podwall.model import Inventory
from podwall.nft.compile import Ruleset, compile_ruleset
from podwall.nft.live import Nft
from podwall.policy.load import LoadedPolicy
from podwall.policy.semantics import Resolved, impossible_flows, resolve, world_ingress

STATE_DIR = Path(os.environ.get("PODWALL_STATE_DIR", "/run/podwall"))


class LockBusy(EnvironmentProblem):
    pass


@contextmanager
def lock(timeout_s: float = 30.0) -> Iterator[None]:
    """Serialise apply, reset and watch across processes (a flock under /run/podwall)."""
    import time

    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "lock", "w") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise LockBusy(f"another podwall (apply/reset/watch) holds {STATE_DIR / 'lock'}") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@dataclass(frozen=True)
class NetworkDrift:
    network: str
    message: str
    weakens: bool  # the existing network is weaker than the policy asks: refuse unless --force


@dataclass(frozen=True)
class Plan:
    loaded: LoadedPolicy
    resolved: Resolved
    ruleset: Ruleset
    to_create: tuple[str, ...]
    drift: tuple[NetworkDrift, ...]
    warnings: tuple[str, ...]
    ingress: tuple[Any, ...] = ()  # semantics.Ingress: the published ports behind `from: world` flows

    def to_json(self) -> dict[str, Any]:
        r = self.resolved
        return {
            "policy": {"file": self.loaded.path, "sha256": self.loaded.sha256, "mode": r.policy.mode},
            "networks": {
                "create": list(self.to_create),
                "drift": [asdict(d) for d in self.drift],
                "managed": [n.name for n in r.managed_networks],
            },
            "workloads": {k: list(v) for k, v in r.members.items()},
            "unmatched": list(r.unmatched),
            "unenforceable": [{"container": c, "why": w} for c, w in r.unenforceable],
            "warnings": list(self.warnings),
            "world_ingress": [asdict(x) for x in self.ingress],
            "ruleset": {
                "flows": self.ruleset.flow_count,
                "elements": {k: len(v) for k, v in sorted(self.ruleset.maps.items())},
                "sets": {k: len(v) for k, v in sorted(self.ruleset.sets.items())},
            },
        }


def network_drift(loaded: LoadedPolicy, inv: Inventory) -> list[NetworkDrift]:
    out = []
    for name, spec in loaded.policy.networks.items():
        net = inv.network(name)
        if net is None:
            continue
        if net.driver != "bridge":
            out.append(NetworkDrift(name, f"driver is {net.driver}, not bridge: it cannot be filtered", True))
        if spec.internal and not net.internal:
            out.append(NetworkDrift(name, "policy says internal, the existing network is not", True))
        if not spec.internal and net.internal:
            out.append(NetworkDrift(name, "existing network is internal, the policy does not ask for it", False))
        if spec.isolate == "strict" and net.isolate != "strict":
            out.append(NetworkDrift(name, "policy says isolate: strict, the existing network is not", True))
        have = {s.cidr for s in net.subnets}
        for cidr in spec.cidrs:
            if cidr not in have:
                got = ", ".join(sorted(map(str, have))) or "none"
                out.append(NetworkDrift(name, f"policy subnet {cidr}, existing network has {got}", False))
    return out


def _extra_warnings(res: Resolved) -> list[str]:
    out = []
    host_net = [c for c, why in res.unenforceable if why.startswith("host network")]
    for c in host_net:
        out.append(
            f"{c} uses the host network: its traffic is the host's own, and host → container connections are "
            "never filtered, so it can reach every managed container"
        )
    for c in res.inventory.containers:
        if c.running and c.network_mode.value == "host" and c.name not in host_net:
            out.append(f"{c.name} (host network) can reach every managed container: host traffic is not filtered")
    return out


def _exception_warnings(loaded: LoadedPolicy) -> list[str]:
    from podwall.audit.rules.pw109_exception import valid

    out = []
    for i, exc in enumerate(loaded.policy.exceptions):
        if not valid(exc):
            where = loaded.exception_locs[i] if i < len(loaded.exception_locs) else None
            at = f"{where.file}:{where.line}: " if where else ""
            out.append(f"{at}PW109 exception for {exc.container!r} ({exc.rule}) has no reason, no expiry, "
                       "or has expired: it suppresses nothing")
    return out


def _flow_warnings(loaded: LoadedPolicy, res: Resolved) -> list[str]:
    def at(i: int) -> str:
        loc = loaded.flow_locs[i] if i < len(loaded.flow_locs) else None
        return f"{loc.file}:{loc.line}: flows[{i}]: " if loc else f"flows[{i}]: "

    return [at(i) + why for i, why in (*impossible_flows(res), *world_ingress(res)[1])]


def make_plan(loaded: LoadedPolicy, inv: Inventory) -> Plan:
    res = resolve(loaded.policy, inv)
    rs = compile_ruleset(res, loaded.short_hash)
    return Plan(
        loaded=loaded,
        resolved=res,
        ruleset=rs,
        to_create=res.missing_networks,
        drift=tuple(network_drift(loaded, inv)),
        warnings=(*res.warnings, *_extra_warnings(res), *_exception_warnings(loaded),
                  *_flow_warnings(loaded, res)),
        ingress=tuple(world_ingress(res)[0]),
    )


# ---- state ------------------------------------------------------------------------------------------------


@dataclass
class State:
    policy_file: str
    sha256: str
    mode: str
    applied_at: str
    snapshot: str
    flows: list[str] = field(default_factory=list)

    @staticmethod
    def path() -> Path:
        return STATE_DIR / "state.json"

    def save(self) -> None:
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = self.path().with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1))
        tmp.replace(self.path())

    @classmethod
    def load(cls) -> State | None:
        try:
            return cls(**json.loads(cls.path().read_text()))
        except (OSError, ValueError, TypeError):
            return None


def describe_flow(loaded: LoadedPolicy, i: int) -> str:
    f = loaded.policy.flows[i]

    def peer(p: object) -> str:
        return p if isinstance(p, str) else f"cidr:{getattr(p, 'cidr', p)}"

    ports = ",".join(f.ports) if f.ports else "any"
    return f"{peer(f.from_)} -> {peer(f.to)} {ports}"


# ---- apply ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Environment:
    """The adapters apply needs; tests pass fakes."""

    read_inventory: Callable[[], Inventory]
    create_network: Callable[[str, Any], None]
    remove_network: Callable[[str], None]
    nft: Nft
    revoke: Callable[[Resolved], int]


class ApplyRefused(PodwallError):
    pass


def live_environment() -> Environment:
    """The real adapters: Podman CLI, nft, conntrack."""
    from podwall.nft.conntrack import revoke
    from podwall.podman import networks
    from podwall.podman.live import read_inventory

    def create(name: str, spec: Any) -> None:
        networks.create_network(
            name, [str(c) for c in spec.cidrs], internal=spec.internal, isolate_strict=spec.isolate == "strict"
        )

    return Environment(
        read_inventory=read_inventory,
        create_network=create,
        remove_network=lambda n: networks.remove_network(n),
        nft=Nft(),
        revoke=revoke,
    )


def apply(loaded: LoadedPolicy, env: Environment, *, force: bool = False) -> ApplyResult:
    """Raises on any failure before the commit, with nothing changed; after it, problems become warnings."""
    inv = env.read_inventory()
    drift = network_drift(loaded, inv)
    weak = [d for d in drift if d.weakens]
    if weak and not force:
        raise ApplyRefused(
            "existing networks are weaker than the policy (use --force to apply anyway): "
            + "; ".join(f"{d.network}: {d.message}" for d in weak)
        )
    created: list[str] = []
    try:
        for name, spec in loaded.policy.networks.items():
            if inv.network(name) is None:
                env.create_network(name, spec)
                created.append(name)
        if created:
            inv = env.read_inventory()
        plan = make_plan(loaded, inv)
        missing = [n for n in plan.resolved.missing_networks]
        if missing:
            raise EnvironmentProblem(f"networks still missing after creation: {', '.join(missing)}")
        env.nft.check(plan.ruleset.script)
        env.nft.apply(plan.ruleset.script)
    except BaseException:
        for name in reversed(created):
            try:
                env.remove_network(name)
            except PodwallError:
                pass  # best effort: the original error is what the user must see
        raise
    # Committed: from here on nothing may report failure for a ruleset that is live; problems are warnings.
    warnings: list[str] = []
    snapshot: str | None = None
    try:
        snapshot = env.nft.snapshot()
        State(
            policy_file=str(Path(loaded.path).resolve()),
            sha256=loaded.sha256,
            mode=loaded.policy.mode,
            applied_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            snapshot=snapshot or "",
            flows=[describe_flow(loaded, i) for i in range(len(loaded.policy.flows))],
        ).save()
    except (PodwallError, OSError) as exc:
        warnings.append(f"the policy is loaded, but its state could not be recorded ({exc}): status will "
                        "report drift")
    try:
        cut = env.revoke(plan.resolved)
    except PodwallError as exc:
        cut = 0
        warnings.append(f"established connections that lost their right were NOT cut: {exc}")
    return ApplyResult(plan, cut, created, warnings, snapshot)


@dataclass(frozen=True)
class ApplyResult:
    plan: Plan
    cut: int
    created: list[str]
    warnings: list[str]
    snapshot: str | None = None  # the normalised listing right after the commit (watch's drift baseline)


def reset(nft: Nft) -> bool:
    removed = nft.delete()
    try:
        State.path().unlink()
    except FileNotFoundError:
        pass
    return removed
