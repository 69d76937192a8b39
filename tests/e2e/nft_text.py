"""Listings of nft state that are comparable across time (no counters, no dynamically learnt elements)."""

from __future__ import annotations

import re
import subprocess


def stable(text: str) -> str:
    """Drop counters and the elements of podwall's `denied` sets (they change with traffic and expire)."""
    text = re.sub(r"counter packets \d+ bytes \d+", "counter", text)
    return re.sub(r"(set denied[46] \{.*?)(\n\t\telements = \{.*?\}\n)", r"\1\n", text, flags=re.S)


def ruleset() -> str:
    return stable(subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout)


def podwall_table() -> str:
    cp = subprocess.run(["nft", "-s", "list", "table", "inet", "podwall"], capture_output=True, text=True, check=True)
    return stable(cp.stdout)
