from __future__ import annotations

import datetime as dt
import fnmatch
from collections.abc import Iterator

from podwall.audit.findings import Finding, Severity, Threat
from podwall.audit.rule import AuditContext, Rule, register


def today() -> dt.date:
    return dt.date.today()


def valid(exc: object, on: dt.date | None = None) -> bool:
    """An exception counts only with a reason and an expiry date that has not passed."""
    reason = getattr(exc, "reason", None)
    expires = getattr(exc, "expires", None)
    return bool(reason and reason.strip()) and expires is not None and expires >= (on or today())


@register
class BadException(Rule):
    """A policy exception without a reason, without an expiry date, or past its expiry."""

    id = "PW109"
    title = "Policy exception without a reason or past its expiry"
    severity = Severity.MEDIUM
    threats = (Threat.HOST_EXPOSURE, Threat.LATERAL_MOVEMENT)
    remediation = (
        "Give every exception a `reason` and an `expires` date, and renew it deliberately (or fix the "
        "container) when it expires. An invalid exception suppresses nothing."
    )
    needs = frozenset({"policy"})
    kinds = frozenset({"live", "policy"})

    def inventory(self, ctx: AuditContext) -> Iterator[Finding]:
        lp = ctx.policy
        for i, exc in enumerate(lp.policy.exceptions):
            loc = lp.exception_locs[i] if i < len(lp.exception_locs) else None
            what = f"exception for {exc.container!r} ({exc.rule})"
            if not (exc.reason and exc.reason.strip()):
                yield self.finding(exc.container, f"{what} gives no reason", loc)
            if exc.expires is None:
                yield self.finding(exc.container, f"{what} has no expiry date", loc)
            elif exc.expires < today():
                yield self.finding(exc.container, f"{what} expired on {exc.expires.isoformat()}", loc)


def excepted(rule: str, container: str, exceptions: object) -> object | None:
    """The valid exception covering (rule, container), if any."""
    for exc in exceptions or ():  # type: ignore[attr-defined]
        if exc.rule == rule and fnmatch.fnmatchcase(container, exc.container) and valid(exc):
            return exc
    return None
