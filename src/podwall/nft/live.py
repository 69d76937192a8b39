"""The nft adapter: check, apply, read back, delete. Only `table inet podwall` is ever touched."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from podwall import proc
from podwall.errors import CommandFailed, EnvironmentProblem
from podwall.nft.compile import FAMILY, FLOW_COMMENT, TABLE

DYNAMIC_SETS = frozenset({"denied4", "denied6"})  # filled by the packet path: never part of drift


class NftError(EnvironmentProblem):
    pass


@dataclass(frozen=True)
class FlowCounter:
    flow: int
    packets: int
    bytes: int


class Nft:
    def __init__(self, binary: str = "nft") -> None:
        self.binary = binary

    def _run(self, args: list[str], script: str | None = None, check: bool = True) -> str:
        try:
            return str(proc.run([self.binary, *args], input=script, check=check).stdout)
        except CommandFailed as exc:
            raise NftError(f"nft {' '.join(args)}: {exc.stderr.strip()}{_quote(exc.stderr, script)}") from exc

    def check(self, script: str) -> None:
        """`nft -c`: validate against the live kernel without changing anything."""
        self._run(["-c", "-f", "-"], script)

    def apply(self, script: str) -> None:
        """One `nft -f` transaction: all or nothing."""
        self._run(["-f", "-"], script)

    def batch(self, lines: Iterable[str]) -> None:
        script = "\n".join(lines) + "\n"
        if script.strip():
            self._run(["-f", "-"], script)

    def exists(self) -> bool:
        cp = proc.run([self.binary, "list", "table", FAMILY, TABLE], check=False)
        return cp.returncode == 0

    def list_json(self, stateless: bool = False) -> dict[str, Any] | None:
        args = ["-j", *(["-s"] if stateless else []), "list", "table", FAMILY, TABLE]
        cp = proc.run([self.binary, *args], check=False)
        if cp.returncode != 0:
            if "No such file" in cp.stderr or "does not exist" in cp.stderr:
                return None
            raise NftError(f"nft list table: {cp.stderr.strip()}")
        try:
            return dict(json.loads(cp.stdout))
        except json.JSONDecodeError as exc:
            raise NftError(f"nft -j printed invalid JSON: {exc}") from exc

    def list_text(self) -> str | None:
        cp = proc.run([self.binary, "list", "table", FAMILY, TABLE], check=False)
        return cp.stdout if cp.returncode == 0 else None

    def snapshot(self) -> str | None:
        """A normalised listing without counters, handles or dynamically learnt elements: drift compares it."""
        data = self.list_json(stateless=True)
        return None if data is None else normalise(data)

    def delete(self) -> bool:
        if not self.exists():
            return False
        # `table X` first makes the delete safe against a race with another remover
        self._run(["-f", "-"], f"table {FAMILY} {TABLE}\ndelete table {FAMILY} {TABLE}\n")
        return True

    def flow_counters(self, data: dict[str, Any] | None = None) -> tuple[list[FlowCounter], int]:
        """Per-flow accept counters (sums over the elements loaded now) and the deny chain's counter."""
        elements, denied = self.element_counters(data)
        per_flow: dict[int, list[int]] = {}
        for e in elements:
            acc = per_flow.setdefault(e.flow, [0, 0])
            acc[0] += e.packets
            acc[1] += e.bytes
        return [FlowCounter(f, p, b) for f, (p, b) in sorted(per_flow.items())], denied

    def element_counters(self, data: dict[str, Any] | None = None) -> tuple[list[ElementCounter], int]:
        """The counter of every verdict-map element, and the deny chain's counter."""
        data = data or self.list_json() or {"nftables": []}
        denied = 0
        for item in data.get("nftables", []):
            rule = item.get("rule")
            if rule and rule.get("chain") == "deny":
                counter = next((e["counter"] for e in rule.get("expr", []) if "counter" in e), None)
                if counter is not None:
                    denied += int(counter["packets"])
        return parse_element_counters(data), denied

    def denied_pairs(self, data: dict[str, Any] | None = None) -> list[tuple[str, str, int]]:
        """(source, destination, packets) learnt in the denied4/denied6 sets."""
        data = data or self.list_json() or {"nftables": []}
        out = []
        for item in data.get("nftables", []):
            s = item.get("set")
            if not s or s.get("name") not in DYNAMIC_SETS:
                continue
            for e in s.get("elem", []):
                el = e.get("elem", e) if isinstance(e, dict) else e
                val = el.get("val") if isinstance(el, dict) else el
                parts = val.get("concat", []) if isinstance(val, dict) else []
                packets = int(el.get("counter", {}).get("packets", 0)) if isinstance(el, dict) else 0
                if len(parts) == 2:
                    out.append((str(parts[0]), str(parts[1]), packets))
        return out


@dataclass(frozen=True)
class ElementCounter:
    """The counter of one verdict-map element: which map, its key (as listed), the flow it belongs to."""

    map: str
    key: str
    flow: int
    packets: int
    bytes: int


def parse_element_counters(data: dict[str, Any]) -> list[ElementCounter]:
    """Counters of the verdict-map elements in a JSON listing; the flow comes from the element's comment."""
    out = []
    for item in data.get("nftables", []):
        m = item.get("map")
        if not m:
            continue
        for pair in m.get("elem", []):
            el = pair[0] if isinstance(pair, list) and pair else pair
            el = el.get("elem", el) if isinstance(el, dict) else el
            if not isinstance(el, dict):
                continue
            comment = str(el.get("comment", ""))
            if not (comment.startswith(FLOW_COMMENT) and comment[len(FLOW_COMMENT):].isdigit()):
                continue
            counter = el.get("counter") or {}
            out.append(ElementCounter(str(m.get("name")), json.dumps(el.get("val"), sort_keys=True),
                                      int(comment[len(FLOW_COMMENT):]), int(counter.get("packets", 0)),
                                      int(counter.get("bytes", 0))))
    return out


def _quote(stderr: str, script: str | None) -> str:
    """nft names lines of its standard input (`/dev/stdin:12:5`): quote the line of podwall's script."""
    import re

    m = re.search(r"stdin:(\d+):", stderr)
    if not m or script is None:
        return ""
    lines = script.splitlines()
    n = int(m.group(1))
    return f"\n  generated line {n}: {lines[n - 1].strip()}" if 0 < n <= len(lines) else ""


def normalise(data: dict[str, Any]) -> str:
    items = []
    for item in data.get("nftables", []):
        if "metainfo" in item:
            continue
        item = json.loads(json.dumps(item))
        for body in item.values():
            if isinstance(body, dict):
                body.pop("handle", None)
                if body.get("name") in DYNAMIC_SETS:
                    body.pop("elem", None)
        items.append(item)
    return json.dumps(items, sort_keys=True)
