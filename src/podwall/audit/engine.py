"""Run the rules: over an inventory (`audit_inventory`), or over files and live state (`run_audit`).

A rule that raises is a podwall bug. It must never look like a clean result, so the engine records it as
an internal error (exit 3) naming the rule and the object, and goes on with the other rules and objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from podwall.audit import suppress
from podwall.audit.findings import Finding, Severity, Suppressed
from podwall.audit.rule import AuditContext, Rule, all_rules
from podwall.errors import InputProblem
from podwall.exitcodes import RC, worst
from podwall.model import Container, Inventory, Loc, Network
from podwall.sources.discover import discover, read_all


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    suppressed: list[Suppressed] = field(default_factory=list)
    errors: list[InputProblem] = field(default_factory=list)  # unreadable/unparsable input: exit 2
    internal_errors: list[InputProblem] = field(default_factory=list)  # crashes, live reading failed: exit 3
    files: list[str] = field(default_factory=list)  # files audited

    @property
    def all_errors(self) -> list[InputProblem]:
        return [*self.errors, *self.internal_errors]

    def exit_code(self, fail_on: Severity = Severity.LOW) -> int:
        return worst(
            RC.FINDINGS if any(f.severity.at_least(fail_on) for f in self.findings) else RC.OK,
            RC.INVALID_INPUT if self.errors else RC.OK,
            RC.ENVIRONMENT if self.internal_errors else RC.OK,
        )


def _guarded(rule: Rule, obj: str, loc: Loc | None, call: Callable[[], Iterable[Finding]], crashes: list[InputProblem]) -> list[Finding]:
    try:
        return list(call())
    except Exception as exc:  # noqa: BLE001 - reported as an internal error, see module docstring
        crashes.append(
            InputProblem(
                loc.file if loc else None,
                loc.line if loc else None,
                None,
                f"rule {rule.id} failed on `{obj}` ({type(exc).__name__}: {exc}); its result is unknown",
            )
        )
        return []


def audit_inventory(
    inventory: Inventory, rules: Sequence[Rule] | None = None, **context: Any
) -> tuple[list[Finding], list[InputProblem]]:
    """(findings, rule crashes). Extra keyword arguments become context (e.g. policy=...)."""
    policy = context.pop("policy", None)
    ctx = AuditContext(inventory=inventory, policy=policy, extra=context)
    active = [r for r in (all_rules() if rules is None else rules) if all(ctx.provides(n) for n in r.needs)]
    findings: list[Finding] = []
    crashes: list[InputProblem] = []
    for rule in active:
        for c in inventory.containers:
            findings += _guarded(rule, c.name, c.loc, partial(rule.container, c, ctx), crashes)
        for n in inventory.networks:
            findings += _guarded(rule, n.name, n.loc, partial(rule.network, n, ctx), crashes)
        findings += _guarded(rule, "(inventory)", None, partial(rule.inventory, ctx), crashes)
    findings.sort(key=lambda f: f.sort_key)
    return findings, crashes


def merge(inventories: Iterable[Inventory]) -> Inventory:
    containers: list[Container] = []
    networks: list[Network] = []
    for inv in inventories:
        containers += inv.containers
        networks += inv.networks
    return Inventory(tuple(containers), tuple(networks))


def run_audit(
    paths: Sequence[str],
    *,
    excludes: Sequence[str] = (),
    live: Inventory | None = None,
    live_error: InputProblem | None = None,
    rules: Sequence[Rule] | None = None,
    **context: Any,
) -> AuditResult:
    """Discover and read `paths`, add the live inventory if given, run the rules, apply suppressions."""
    result = AuditResult()
    texts: dict[str, str] = {}
    inventories: list[Inventory] = []
    if paths:
        found = discover(paths, excludes)
        result.errors += found.problems
        file_results, crashes = read_all(found.files)
        result.internal_errors += crashes
        texts = {f.path: f.text for f in found.files}
        for fr in file_results:
            result.errors += fr.problems
            inventories.append(fr.inventory)
        result.files = [f.path for f in found.files]
    if live is not None:
        inventories.append(live)
    if live_error is not None:
        result.internal_errors.append(live_error)
    findings, crashes = audit_inventory(merge(inventories), rules, **context)
    result.internal_errors += crashes
    result.findings, result.suppressed = suppress.apply(findings, texts)
    return result
