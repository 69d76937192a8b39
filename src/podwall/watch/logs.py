"""One line per decision (grant, revoke, restore, reload, resync, …), as text or JSON lines."""

from __future__ import annotations

import datetime as dt
import json
import sys
import threading
from typing import Any, TextIO

Value = str | int | float | bool | None | list[str]


class DecisionLog:
    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"unknown log format {fmt!r}")
        self.fmt = fmt
        self.stream = stream if stream is not None else sys.stderr
        self.lock = threading.Lock()

    def render(self, decision: str, level: str, fields: dict[str, Any], now: float | None = None) -> str:
        stamp = dt.datetime.fromtimestamp(now if now is not None else dt.datetime.now().timestamp(), dt.UTC)
        ts = stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if self.fmt == "json":
            return json.dumps(
                {"ts": ts, "level": level, "decision": decision, **fields}, sort_keys=False, default=str
            )
        parts = [ts, level.upper(), decision]
        for k, v in fields.items():
            if v is None or v == [] or v == "":
                continue
            text = ",".join(map(str, v)) if isinstance(v, list) else str(v)
            # values come from containers (names, labels): quote anything that could split a line or a field
            if any(ch in text for ch in ' "=\n\r\t') or not text:
                text = json.dumps(text)
            parts.append(f"{k}={text}")
        return " ".join(parts)

    def __call__(self, decision: str, level: str = "info", **fields: Any) -> None:
        line = self.render(decision, level, fields)
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()
