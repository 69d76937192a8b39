"""Compose files (compose spec) → inventory.

Services become `Container(kind="compose-service")` named after the service, with compose's own
project/service labels. Top-level networks become `Network(kind="compose-network")`; they count as Podman
networks (`podman_targeted`) only when the file says it targets Podman: an `x-podman` key, a
`# podwall: podman` comment, or a `podman-compose*.y*ml` file name. Other compose files may well run on
Docker, whose bridge isolation differs.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import PurePath
from typing import Any

from podwall.model import Container, Inventory, Loc, Network, PortMapping, frozen_map
from podwall.sources.base import FileResult, LineReader, SourceKind
from podwall.sources.invocations import ContainerDraft, NetworkDraft
from podwall.sources.netvalues import normalise_cap
from podwall.sources.ports import PortSpecError, parse_port_spec
from podwall.sources.yamlload import (
    YamlParseError,
    is_list,
    is_map,
    item_line,
    key_line,
    load_documents,
    node_line,
    truthy,
    value_line,
)

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
_PODMAN_COMMENT = re.compile(r"#\s*podwall:\s*podman\b", re.IGNORECASE)


def targets_podman(path: str, text: str, top: Any) -> bool:
    name = PurePath(path).name.lower()
    if fnmatch.fnmatch(name, "podman-compose*.y*ml"):
        return True
    if is_map(top) and any(str(k).startswith("x-podman") for k in top):
        return True
    return bool(_PODMAN_COMMENT.search(text))


def project_name(path: str, top: Any) -> str:
    if is_map(top) and isinstance(top.get("name"), str) and top["name"].strip():
        return str(top["name"]).strip()
    raw = PurePath(path).parent.name or "project"
    # Compose normalises the directory name: lower case, only [a-z0-9_-].
    return re.sub(r"[^a-z0-9_-]", "", raw.lower()) or "project"


class _Reader(LineReader):
    def __init__(self, path: str, text: str):
        super().__init__(path)
        self.text = text

    # -- services -----------------------------------------------------------------------------------
    def service(self, name: str, svc: Any, line: int, project: str, declared: set[str]) -> Container | None:
        if svc is None:
            svc = {}
        if not is_map(svc):
            self.bad(line, f"services.{name}: expected a mapping")
            return None
        draft = ContainerDraft()
        mode = svc.get("network_mode")
        if mode is not None:
            draft.net.add(str(mode), self.loc(value_line(svc, "network_mode", line)))
        nets = svc.get("networks")
        if nets is not None:
            nl = value_line(svc, "networks", line)
            if is_list(nets):
                for i, n in enumerate(nets):
                    draft.net.add_network_name(str(n), self.loc(item_line(nets, i, nl)))
            elif is_map(nets):
                for n in nets:
                    draft.net.add_network_name(str(n), self.loc(key_line(nets, n, nl)))
            else:
                self.bad(nl, f"services.{name}.networks: expected a list or a mapping")
        elif mode is None and "default" in declared:
            # The file configures the project's default network itself: joining it is a deliberate choice.
            draft.net.add_network_name("default", self.loc(line))
        self.ports(name, svc, line, draft)
        caps = svc.get("cap_add")
        if caps is not None:
            cl = value_line(svc, "cap_add", line)
            if is_list(caps):
                for i, cap in enumerate(caps):
                    draft.add_caps(normalise_cap(str(cap)), self.loc(item_line(caps, i, cl)))
            else:
                self.bad(cl, f"services.{name}.cap_add: expected a list")
        if "privileged" in svc and truthy(svc["privileged"]):
            draft.set_privileged(True, self.loc(value_line(svc, "privileged", line)))
        fields = draft.model_fields()
        return Container(
            name=name,
            image=str(svc.get("image") or ""),
            labels=frozen_map({PROJECT_LABEL: project, SERVICE_LABEL: name}),
            kind="compose-service",
            loc=self.loc(line),
            **fields,  # type: ignore[arg-type]
        )

    def ports(self, name: str, svc: Any, line: int, draft: ContainerDraft) -> None:
        ports = svc.get("ports")
        if ports is None:
            return
        pl = value_line(svc, "ports", line)
        if not is_list(ports):
            self.bad(pl, f"services.{name}.ports: expected a list")
            return
        for i, p in enumerate(ports):
            il = item_line(ports, i, pl)
            if is_map(p) and "published" in p:
                il = value_line(p, "published", il)  # the value that publishes, like kube's hostPort
            try:
                draft.ports.append(self.port(p, self.loc(il)))
            except PortSpecError as exc:
                self.bad(il, f"services.{name}.ports[{i}]: {exc}")

    @staticmethod
    def port(p: Any, loc: Loc) -> PortMapping:
        if is_map(p):
            if "target" not in p:
                raise PortSpecError("long syntax needs `target`")
            ip = str(p.get("host_ip") or "")
            if ":" in ip and not ip.startswith("["):
                ip = f"[{ip}]"
            published = "" if p.get("published") is None else str(p["published"])
            proto = str(p.get("protocol") or "tcp")
            spec = f"{p['target']}/{proto}"
            if ip:
                spec = f"{ip}:{published}:{spec}"
            elif published:
                spec = f"{published}:{spec}"
            return parse_port_spec(spec, loc)
        if isinstance(p, (str, int)) and not isinstance(p, bool):
            return parse_port_spec(str(p), loc)
        raise PortSpecError(f"unsupported port entry {p!r}")

    # -- networks -----------------------------------------------------------------------------------
    def network(self, key: str, spec: Any, line: int, podman: bool) -> Network | None:
        if spec is None:
            spec = {}
        if not is_map(spec):
            self.bad(line, f"networks.{key}: expected a mapping")
            return None
        if truthy(spec.get("external")):
            return None  # created elsewhere: whoever creates it is audited there
        draft = NetworkDraft()
        if spec.get("driver") is not None:
            draft.driver = str(spec["driver"]).strip().lower()
            draft.locs["driver"] = self.loc(value_line(spec, "driver", line))
        if "internal" in spec:
            draft.internal = truthy(spec["internal"])
            draft.locs["internal"] = self.loc(value_line(spec, "internal", line))
        opts = spec.get("driver_opts")
        if is_map(opts):
            ol = value_line(spec, "driver_opts", line)
            for k, v in opts.items():
                value = ("true" if v else "false") if isinstance(v, bool) else str(v)
                draft.add_option(f"{k}={value}", self.loc(key_line(opts, k, ol)))
        if truthy(spec.get("enable_ipv6")):
            draft.ipv6 = True
        ipam = spec.get("ipam")
        if is_map(ipam) and is_list(ipam.get("config")):
            for entry in ipam["config"]:
                if is_map(entry) and entry.get("subnet"):
                    draft.add_subnet(str(entry["subnet"]))
        net = draft.build(key, "compose-network", self.loc(line))
        return Network(**{**net.__dict__, "podman_targeted": podman})

    def read(self, docs: tuple[Any, ...]) -> Inventory:
        top = next((d for d in docs if d is not None), None)
        if not is_map(top):
            self.bad(1, "a compose file must be a mapping with `services:`")
            return Inventory()
        podman = targets_podman(self.path, self.text, top)
        project = project_name(self.path, top)
        networks: list[Network] = []
        declared: set[str] = set()
        top_nets = top.get("networks")
        if top_nets is not None:
            tl = key_line(top, "networks", 1)
            if is_map(top_nets):
                for key, spec in top_nets.items():
                    declared.add(str(key))
                    net = self.network(str(key), spec, key_line(top_nets, key, tl), podman)
                    if net is not None:
                        networks.append(net)
            else:
                self.bad(tl, "networks: expected a mapping")
        containers: list[Container] = []
        services = top.get("services")
        if services is not None:
            sl = key_line(top, "services", 1)
            if not is_map(services):
                self.bad(sl, "services: expected a mapping")
            else:
                for name, svc in services.items():
                    c = self.service(str(name), svc, key_line(services, name, node_line(services, sl)), project, declared)
                    if c is not None:
                        containers.append(c)
        return Inventory(tuple(containers), tuple(networks))


def read_compose(path: str, text: str, docs: tuple[Any, ...] | None = None) -> FileResult:
    if docs is None:
        try:
            docs = load_documents(text, path)
        except YamlParseError as exc:
            return FileResult(path, SourceKind.COMPOSE, problems=(exc.problem,))
    reader = _Reader(path, text)
    inv = reader.read(docs)
    return FileResult(path, SourceKind.COMPOSE, inv, tuple(reader.problems))
