"""Kubernetes YAML for `podman kube play` → inventory.

Each Pod (or workload pod template) becomes a pod infra `Container(kind="kube-pod", infra=True)` carrying
`hostNetwork` and every `hostPort`, plus one `Container(kind="kube-container")` per container, named
`<pod>-<container>` as `podman kube play` names them, carrying capabilities and `privileged`. Only
`hostPort` publishes: `podman kube play` does not publish a bare `containerPort`. Workloads get Podman's
pod name `<name>-pod`. Other kinds are ignored. Lines are physical lines over the whole multi-document file.
"""

from __future__ import annotations

from typing import Any

from podwall.model import Container, Inventory, Loc, NetMode, PortMapping, frozen_map
from podwall.sources.base import FileResult, LineReader, SourceKind
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

WORKLOADS = frozenset({"Deployment", "DaemonSet", "StatefulSet", "ReplicaSet", "Job"})


def is_kube_document(doc: Any) -> bool:
    return is_map(doc) and "apiVersion" in doc and "kind" in doc


def _pod_spec(doc: Any) -> Any:
    kind = doc.get("kind")
    spec = doc.get("spec")
    if kind == "Pod":
        return spec
    try:
        if kind in WORKLOADS:
            return spec["template"]["spec"]
        if kind == "CronJob":
            return spec["jobTemplate"]["spec"]["template"]["spec"]
    except (KeyError, TypeError):
        return None
    return None


class _Reader(LineReader):

    def pod(self, doc: Any) -> list[Container]:
        kind = str(doc.get("kind"))
        doc_line = node_line(doc, 1)
        spec = _pod_spec(doc)
        if spec is None:
            return []
        meta = doc.get("metadata") if is_map(doc.get("metadata")) else {}
        base = str(meta.get("name") or kind.lower())
        pod_name = base if kind == "Pod" else f"{base}-pod"
        pod_line = value_line(meta, "name", doc_line) if meta.get("name") else doc_line
        if not is_map(spec):
            self.bad(pod_line, f"{kind} {base}: spec is not a mapping")
            return []
        locs: dict[str, Loc] = {}
        mode = NetMode.DEFAULT
        if "hostNetwork" in spec and truthy(spec["hostNetwork"]):
            mode = NetMode.HOST
            locs["network_mode"] = self.loc(value_line(spec, "hostNetwork", pod_line))
        members: list[Container] = []
        ports: list[PortMapping] = []
        for group in ("initContainers", "containers"):
            ctrs = spec.get(group)
            if ctrs is None:
                continue
            gl = value_line(spec, group, pod_line)
            if not is_list(ctrs):
                self.bad(gl, f"{kind} {base}: {group} is not a list")
                continue
            for i, ctr in enumerate(ctrs):
                cl = item_line(ctrs, i, gl)
                if not is_map(ctr):
                    self.bad(cl, f"{kind} {base}: {group}[{i}] is not a mapping")
                    continue
                members.append(self.container(ctr, pod_name, cl, ports))
        infra = Container(
            name=pod_name,
            kind="kube-pod",
            infra=True,
            network_mode=mode,
            ports=tuple(ports),
            loc=self.loc(pod_line),
            locs=frozen_map(locs),
        )
        return [infra, *members]

    def container(self, ctr: Any, pod: str, line: int, pod_ports: list[PortMapping]) -> Container:
        name = str(ctr.get("name") or "container")
        locs: dict[str, Loc] = {}
        for i, p in enumerate(ctr.get("ports") or ()):
            if not is_map(p) or p.get("hostPort") is None:
                continue
            pl = value_line(p, "hostPort", item_line(ctr["ports"], i, line))
            ip = str(p.get("hostIP") or "")
            if ":" in ip:
                ip = f"[{ip}]"
            spec = f"{p['hostPort']}:{p.get('containerPort', p['hostPort'])}/{str(p.get('protocol') or 'TCP').lower()}"
            try:
                pod_ports.append(parse_port_spec(f"{ip}:{spec}" if ip else spec, self.loc(pl)))
            except PortSpecError as exc:
                self.bad(pl, f"container {name}: {exc}")
        sc = ctr.get("securityContext")
        caps: list[str] = []
        privileged = False
        if is_map(sc):
            sl = value_line(ctr, "securityContext", line)
            if "privileged" in sc and truthy(sc["privileged"]):
                privileged = True
                locs["privileged"] = self.loc(value_line(sc, "privileged", sl))
            capabilities = sc.get("capabilities")
            add = capabilities.get("add") if is_map(capabilities) else None
            if is_list(add):
                al = value_line(capabilities, "add", sl)
                for i, raw in enumerate(add):
                    cap = normalise_cap(str(raw))
                    if cap not in caps:
                        caps.append(cap)
                        locs[f"cap_add:{cap}"] = self.loc(item_line(add, i, al))
        return Container(
            name=f"{pod}-{name}",
            image=str(ctr.get("image") or ""),
            pod=pod,
            network_mode=NetMode.POD,
            mode_target=pod,
            cap_add=tuple(caps),
            privileged=privileged,
            kind="kube-container",
            loc=self.loc(key_line(ctr, "name", line)),
            locs=frozen_map(locs),
        )


def read_kube(path: str, text: str, docs: tuple[Any, ...] | None = None) -> FileResult:
    if docs is None:
        try:
            docs = load_documents(text, path)
        except YamlParseError as exc:
            return FileResult(path, SourceKind.KUBE, problems=(exc.problem,))
    reader = _Reader(path)
    containers: list[Container] = []
    for doc in docs:
        if is_kube_document(doc):
            containers.extend(reader.pod(doc))
    return FileResult(path, SourceKind.KUBE, Inventory(tuple(containers)), tuple(reader.problems))
