"""Podman events, parsed at the border into typed objects, and what each one asks the daemon to do. Pure.

The file logger and `podman events --format json` print the same JSON object per line (measured on 4.3 and
5.4): `{"ID", "Name", "Status", "Time", "Type", "Attributes", …}`; network connect/disconnect carry the
container in ID/Name and the network in `network`. Network create/remove exist only from Podman 5.3.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from enum import StrEnum


class Action(StrEnum):
    REFRESH = "refresh"  # inspect the container and grant what it has now (init, start, rename, connect, …)
    DOWN = "down"  # its network is being torn down: revoke now, before the address can be reused
    REMOVE = "remove"  # gone for good
    POD = "pod"  # a pod's name ↔ id (pods are named in the inventory, events and inspect give ids)
    RESYNC = "resync"  # something only a full apply handles (a network appeared or went away)
    IGNORE = "ignore"


# Grant when the network is up (init/start); revoke when it goes down (died/cleanup/stop), since the
# address is freed at teardown. restart/unpause come with their own init/start on 4.3 and 5.x, but
# refreshing on them too costs one inspect and closes any gap.
_CONTAINER = {
    "init": Action.REFRESH,
    "start": Action.REFRESH,
    "restart": Action.REFRESH,
    "rename": Action.REFRESH,
    "unpause": Action.REFRESH,
    "died": Action.DOWN,
    "cleanup": Action.DOWN,
    "stop": Action.DOWN,
    "remove": Action.REMOVE,
}
_NETWORK = {
    "connect": Action.REFRESH,
    "disconnect": Action.REFRESH,
    "create": Action.RESYNC,
    "remove": Action.RESYNC,
}

_FRACTION = re.compile(r"\.(\d+)")


@dataclass(frozen=True)
class Event:
    type: str
    status: str
    id: str
    name: str
    time: float  # seconds since the epoch, from Podman's own timestamp (event→enforced latency starts here)
    raw_time: str
    network: str = ""
    pod_id: str = ""

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """Identity across sources: the file tail and `podman events` deliver the same event twice."""
        return (self.type, self.status, self.id, self.raw_time, self.network)

    @property
    def action(self) -> Action:
        if self.type == "container":
            return _CONTAINER.get(self.status, Action.IGNORE)
        if self.type == "network":
            if self.status in ("connect", "disconnect") and not self.id:
                return Action.RESYNC  # a connect without the container's id: only a resync can tell
            return _NETWORK.get(self.status, Action.IGNORE)
        if self.type == "pod" and self.status in ("create", "remove"):
            return Action.POD
        return Action.IGNORE


def parse_time(value: object) -> float | None:
    """RFC 3339 with nanoseconds (Go's time.Time) or a number (seconds or nanoseconds since the epoch)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1e9 if value > 1e12 else float(value)
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    frac = 0.0
    m = _FRACTION.search(text)
    if m:
        frac = float("0." + m.group(1))
        text = text[: m.start()] + text[m.end() :]
    text = text.replace("Z", "+00:00")
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp() + frac


def parse_event(line: str | bytes) -> Event | None:
    """One line of `podman events --format json` or of the events file; None for anything else."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    typ, status = data.get("Type"), data.get("Status")
    if not isinstance(typ, str) or not isinstance(status, str):
        return None
    raw_time = data.get("Time")
    when = parse_time(raw_time)
    if when is None:
        return None

    def text(key: str) -> str:
        v = data.get(key)
        return v if isinstance(v, str) else ""

    return Event(
        type=typ.lower(),
        status=status.lower(),
        id=text("ID"),
        name=text("Name"),
        time=when,
        raw_time=str(raw_time),
        network=text("network") or text("Network"),
        pod_id=text("PodID"),
    )
