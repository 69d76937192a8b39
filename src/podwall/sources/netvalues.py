"""`--network` values (podman run/create/pod create, Quadlet `Network=`, compose `network_mode`) → model.

One accumulator per container: special modes (host, none, container:, ns:, slirp4netns, pasta) win over
named bridge networks, and every value keeps the line it came from so rules point at it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from podwall.model import Attachment, Loc, NetMode

PODMAN_DEFAULT_NETWORK = "podman"  # what `bridge` (and no --network at all) means to rootful Podman


@dataclass
class NetAccumulator:
    mode: NetMode = NetMode.DEFAULT
    target: str | None = None
    networks: list[str] = field(default_factory=list)
    locs: dict[str, Loc] = field(default_factory=dict)

    def add(self, value: str, loc: Loc | None, resolve: Callable[[str], str] = lambda n: n) -> None:
        """Apply one `--network` value. `resolve` maps a Quadlet `X.network`/`X.container` reference."""
        value = value.strip()
        low = value.lower()
        special: tuple[NetMode, str | None] | None = None
        if low == "host":
            special = (NetMode.HOST, None)
        elif low == "none":
            special = (NetMode.NONE, None)
        elif low.startswith("container:"):
            special = (NetMode.CONTAINER, resolve(value.split(":", 1)[1]))
        elif low.startswith("service:"):
            special = (NetMode.CONTAINER, value.split(":", 1)[1])
        elif low.startswith("ns:"):
            special = (NetMode.NS, value.split(":", 1)[1])
        elif low == "slirp4netns" or low.startswith("slirp4netns:"):
            special = (NetMode.SLIRP, None)
        elif low == "pasta" or low.startswith("pasta:"):
            special = (NetMode.PASTA, None)
        if special is not None:
            self.mode, self.target = special
            if loc is not None:
                self.locs["network_mode"] = loc
            return
        # `bridge` and `private` mean Podman's default network; `NAME:ip=…,mac=…` carries options.
        if low in ("bridge", "private", "default"):
            names = [PODMAN_DEFAULT_NETWORK]
        else:
            raw = [value.split(":", 1)[0]] if ":" in value else value.split(",")
            names = [resolve(n.strip()) for n in raw if n.strip()]
        for name in names:
            self.add_network_name(name, loc)

    def add_network_name(self, name: str, loc: Loc | None) -> None:
        """A network by name only (compose `networks:` entries are names, never modes)."""
        if name and name not in self.networks:
            self.networks.append(name)
            if loc is not None:
                self.locs.setdefault("networks", loc)
                self.locs[f"network:{name}"] = loc
        if self.mode is NetMode.DEFAULT and self.networks:
            self.mode = NetMode.BRIDGE
            if loc is not None:
                self.locs.setdefault("network_mode", loc)

    def set_pod(self, pod: str, loc: Loc | None) -> None:
        # A pod member takes the pod's namespace; an explicit special --network would be refused by Podman.
        if self.mode in (NetMode.DEFAULT, NetMode.BRIDGE):
            self.mode, self.target = NetMode.POD, pod
        if loc is not None:
            self.locs["pod"] = loc

    @property
    def attachments(self) -> tuple[Attachment, ...]:
        if self.mode is not NetMode.BRIDGE:
            return ()
        return tuple(Attachment(network=n) for n in self.networks)


def normalise_cap(cap: str) -> str:
    c = cap.strip().upper()
    return c.removeprefix("CAP_")
