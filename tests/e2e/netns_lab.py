"""A throwaway lab of network namespaces joined by veth pairs, for probe tests and the probe benchmark.

Everything lives inside namespaces the lab creates (names `pwp-<pid>-<random>-…`): no interface, address or
nft table is added to the host's own namespace. Addresses come from 198.18.0.0/15 and fd00::/8 only.
Cleanup deletes every table and namespace it made, and keeps going past individual failures.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from types import TracebackType
from typing import Self

from podwall.proc import run


class Lab:
    def __init__(self) -> None:
        self.prefix = f"pwp-{os.getpid()}-{secrets.token_hex(3)}"
        self.namespaces: list[str] = []
        self.tables: list[tuple[str, str]] = []  # (namespace, table name)

    # -- building -----------------------------------------------------------------------------------------

    def netns(self, name: str) -> str:
        """Create namespace PREFIX-name; return the path probes use."""
        full = f"{self.prefix}-{name}"
        run(["ip", "netns", "add", full])
        self.namespaces.append(full)
        # No duplicate address detection: addresses (link-local included) are usable at once, no sleeping.
        self.exec(
            full,
            ["sysctl", "-q", "-w", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0"],
        )
        run(["ip", "-n", full, "link", "set", "lo", "up"])
        return self.path(name)

    def path(self, name: str) -> str:
        return f"/run/netns/{self.prefix}-{name}"

    def full(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def link(self, a: str, a_if: str, a_addrs: list[str], b: str, b_if: str, b_addrs: list[str]) -> None:
        """A veth pair between namespaces a and b (both created by this lab)."""
        fa, fb = self.full(a), self.full(b)
        run(["ip", "-n", fa, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", fb])
        for ns, ifname, addrs in ((fa, a_if, a_addrs), (fb, b_if, b_addrs)):
            for addr in addrs:
                extra = ["nodad"] if ":" in addr else []
                run(["ip", "-n", ns, "addr", "add", addr, "dev", ifname, *extra])
            run(["ip", "-n", ns, "link", "set", ifname, "up"])
        # A fresh veth drops the first neighbour solicitations for up to ~1 s (measured): poll until every
        # address of b answers from a (port 9 is closed, so "refused" means the path works).
        self.wait_reachable(a, [addr.split("/")[0] for addr in b_addrs])

    def wait_reachable(self, src: str, addresses: list[str], timeout_s: float = 10.0) -> None:
        from podwall.cells import Probe
        from podwall.probe import probe_all

        deadline = time.monotonic() + timeout_s
        waiting = list(addresses)
        while waiting:
            got = probe_all([Probe(self.path(src), addr, 9) for addr in waiting], 100)
            waiting = [addr for addr, r in zip(waiting, got, strict=True) if r.detail != "refused"]
            if waiting and time.monotonic() > deadline:
                raise RuntimeError(f"{waiting} not reachable from {src} after {timeout_s}s")

    def table(self, name: str, body: str) -> str:
        """Create `table inet pwprobe_<random>` in namespace `name`; body is the inside of the table."""
        table = f"pwprobe_{secrets.token_hex(4)}"
        self.tables.append((self.full(name), table))
        self.nft(name, f"table inet {table} {{\n{body}\n}}\n")
        return table

    def nft(self, name: str, script: str) -> None:
        self.exec(self.full(name), ["nft", "-f", "-"], input=script)

    def exec(self, full: str, argv: list[str], input: str | None = None) -> str:
        return str(run(["ip", "netns", "exec", full, *argv], input=input).stdout)

    def link_local(self, name: str, ifname: str) -> str:
        out = run(
            ["ip", "-n", self.full(name), "-j", "-6", "addr", "show", "dev", ifname, "scope", "link"]
        ).stdout
        return next(a["local"] for link in json.loads(out) for a in link.get("addr_info", []) if "local" in a)

    # -- cleanup ------------------------------------------------------------------------------------------

    def cleanup(self) -> None:
        errors: list[str] = []
        for ns, table in reversed(self.tables):
            try:
                run(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", table])
            except Exception as exc:  # noqa: BLE001  keep going: the namespace deletion below takes the table with it
                errors.append(f"table {table} in {ns}: {exc}")
        self.tables.clear()
        for ns in reversed(self.namespaces):
            try:
                run(["ip", "netns", "del", ns])
            except Exception as exc:  # noqa: BLE001  reported below, after trying every namespace
                errors.append(f"netns {ns}: {exc}")
        self.namespaces.clear()
        leftover = self.leftovers()
        if leftover:
            raise RuntimeError(f"lab cleanup left namespaces behind: {leftover}; errors: {errors}")

    def leftovers(self) -> list[str]:
        out = str(run(["ip", "netns", "list"]).stdout)
        return [line.split()[0] for line in out.splitlines() if line.startswith(self.prefix)]

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()
